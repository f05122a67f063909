"""Minimal-norm L2 attacks with one signature,
``attack(model, inputs, labels, *, targeted=False, <keyword hyper-parameters>) -> adversarial inputs``,
each registered in its own module as an :class:`AttackSpec` (the command line and the tests read the
registry), and :func:`run_attack`, which runs any of them over a dataset and verifies what it reports.

The attack functions are exported under their own names (``ddn``, ``carlini_wagner_l2``, ``deepfool``,
``pgd_l2``, ``cam_ddn``, and beyond the reference ``fmn``, ``fab``, ``apgd``, ``apgd_t``); importing their
modules registers them (``apgd`` as ``apgd-ce`` and ``apgd-dlr``, ``apgd_t`` as ``apgd-t``)."""

from ._checks import attack_mode, check_inputs, check_labels, check_model
from ._ops import project_l2_ball, quantize, quantize_toward, random_l2_ball
from .apgd import apgd, apgd_t
from .cam_ddn import cam_ddn, cam_goal_reached
from .carlini_wagner import carlini_wagner_l2
from .ddn import ddn
from .deepfool import deepfool
from .fab import fab
from .fmn import fmn
from .pgd import pgd_l2
from .registry import (ATTACK_PRESETS, REFERENCE_ATTACKS, Attack, AttackSpec, expand_attacks, get_attack,
                       get_attack_spec, list_attacks, parse_budgets, register_attack)
from .result import AttackResult, combine_results, load_result, results_table
from .counting import CountingModel, counting
from .runner import run_attack

__all__ = ["ATTACK_PRESETS", "REFERENCE_ATTACKS", "Attack", "AttackResult", "AttackSpec", "CountingModel", "apgd", "apgd_t",
           "attack_mode", "cam_ddn", "cam_goal_reached", "carlini_wagner_l2", "check_inputs", "check_labels",
           "check_model", "combine_results", "counting", "ddn", "deepfool", "expand_attacks", "fab", "fmn",
           "get_attack", "get_attack_spec", "list_attacks", "load_result", "parse_budgets", "pgd_l2",
           "project_l2_ball", "quantize", "quantize_toward", "random_l2_ball", "register_attack", "results_table",
           "run_attack"]
