"""Typed configuration of every advwsl job (torch-free, so the command line's ``--help`` stays fast).

:mod:`.core` holds the machinery (:func:`option`, :class:`Config`, :func:`check_value`), :mod:`.vocabulary`
the fields several commands share, and the other modules one config per job: :mod:`.evaluation`
(``attack``, ``evaluate-robustness``, ``merge``), :mod:`.training` (a training run and its presets,
``train``, ``adv-train``, ``evaluate``), :mod:`.slide` (``slide predict`` / ``slide attack``).
"""

from .core import (Config, Opt, Shard, check_value, config_fields, describe_type, float_grid, json_object, option,
                   parse_cli_text, set_path)
from .evaluation import TABLE_EPSILONS, AttackConfig, MergeConfig, ModelDataConfig, RobustnessConfig, check_levels
from .training import (PRESETS, SCHEDULES, SEGMENTATION_PRESET, AdvTrainConfig, EvaluateConfig, TrainConfig,
                       TrainJobConfig, check_overrides, load_config)
from .reproduce import (AttackRow, AttackTableSettings, ConstantsSettings, DefenseSettings, DefenseTableSettings,
                        Departure,
                        FigureSettings, PatchCountSettings, ReproduceConfig, WslGroup, WslRow, WslTableSettings)
from .slide import SlideAttackConfig, SlidePredictConfig
from .vocabulary import CAM_RULES, PRECISIONS, SPLITS, CamRule, Precision, Split

__all__ = ["Config", "Opt", "Shard", "check_value", "config_fields", "describe_type", "float_grid", "json_object",
           "option", "parse_cli_text", "set_path", "TABLE_EPSILONS", "AttackConfig", "MergeConfig", "ModelDataConfig",
           "RobustnessConfig", "check_levels", "PRESETS", "SCHEDULES", "SEGMENTATION_PRESET", "AdvTrainConfig",
           "EvaluateConfig", "TrainConfig", "TrainJobConfig", "check_overrides", "load_config", "CAM_RULES",
           "PRECISIONS", "SPLITS", "CamRule", "Precision", "Split", "SlideAttackConfig", "SlidePredictConfig",
           "AttackRow", "AttackTableSettings", "ConstantsSettings", "DefenseSettings",
           "DefenseTableSettings", "Departure", "FigureSettings", "PatchCountSettings", "ReproduceConfig", "WslGroup",
           "WslRow", "WslTableSettings"]
