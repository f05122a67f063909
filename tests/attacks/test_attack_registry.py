"""The attack registry read by the command line and run_attack: every special case comes from the spec."""

from __future__ import annotations

import pytest

from advwsl.attacks import (AttackSpec, carlini_wagner_l2, ddn, deepfool, get_attack, get_attack_spec, list_attacks,
                            parse_budgets, register_attack)
from advwsl.attacks.registry import _ATTACKS
from advwsl.errors import ConfigError, InputError


def test_builtin_names():
    assert get_attack("ddn") is ddn
    assert get_attack("cw") is carlini_wagner_l2
    assert get_attack("deepfool") is deepfool
    assert set(list_attacks()) >= {"ddn", "cw", "deepfool", "pgd", "cam-ddn"}
    assert list_attacks("cam") == ["cam-ddn"]


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InputError, match=r"unknown attack 'fgsm'; known: .*ddn.*deepfool"):
        get_attack("fgsm")


def test_register_and_refuse_clashes():
    def mine(model, inputs, labels, *, targeted=False, steps: int = 3):
        return inputs

    spec = AttackSpec("identity-test", mine, "Identity", "returns the input", reference_budget="3", quick_budget="1")
    try:
        register_attack(spec)
        assert get_attack("identity-test") is mine
        register_attack(spec)  # the same spec again: fine
        with pytest.raises(InputError, match="already registered"):
            register_attack(AttackSpec("identity-test", ddn, "DDN", "", reference_budget="1", quick_budget="1"))
        with pytest.raises(ConfigError, match="callable"):
            register_attack(AttackSpec("other-test", 3, "x", "", reference_budget="1", quick_budget="1"))
    finally:
        _ATTACKS._entries.pop("identity-test", None)


def test_budgets_come_from_the_specs():
    assert get_attack_spec("ddn").kwargs(None) == {"steps": 1000}  # section A V-7
    assert get_attack_spec("deepfool").kwargs(None) == {"steps": 100}
    assert get_attack_spec("cw").kwargs(None) == {"binary_search_steps": 9, "steps": 10000, "stepsize": 0.01,
                                                  "initial_const": 0.01}
    # a plain N is Table A V-1's 4 x N/4 with Table A V-9's MNIST hyper-parameters
    assert get_attack_spec("cw").kwargs("100") == {"binary_search_steps": 4, "steps": 25, "stepsize": 0.5,
                                                   "initial_const": 1.0}
    assert get_attack_spec("cw").kwargs("1x100") == {"binary_search_steps": 1, "steps": 100, "stepsize": 0.1,
                                                     "initial_const": 1.0}
    assert get_attack_spec("ddn").budget_label({"steps": 300}) == "300"
    assert get_attack_spec("cw").budget_label({"binary_search_steps": 4, "steps": 25}) == "4x25"
    assert not get_attack_spec("deepfool").targeted and get_attack_spec("ddn").targeted
    assert not get_attack_spec("pgd").minimal_norm and get_attack_spec("cam-ddn").goal == "cam"


def test_parse_budgets():
    assert parse_budgets(["100"], ("ddn", "cw")) == {"ddn": "100", "cw": "100"}
    assert parse_budgets(["cw=9x10000", "ddn=300"], ("ddn", "cw")) == {"ddn": "300", "cw": "9x10000"}
    assert parse_budgets([], ("ddn",)) == {"ddn": None}
    with pytest.raises(ConfigError, match="not among the attacks"):
        parse_budgets(["pgd=3"], ("ddn",))
    with pytest.raises(ConfigError, match="positive number of steps"):
        parse_budgets(["0"], ("ddn",))
    with pytest.raises(ConfigError, match="SEARCHESxSTEPS"):
        parse_budgets(["cw=9x"], ("cw",))
