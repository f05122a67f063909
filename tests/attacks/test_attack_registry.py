"""The attack registry read by the command line and run_attack."""

from __future__ import annotations

import pytest

from advwsl.attacks import ATTACKS, carlini_wagner_l2, ddn, deepfool, get_attack, register_attack
from advwsl.errors import InputError


def test_builtin_names():
    assert get_attack("ddn") is ddn
    assert get_attack("cw") is carlini_wagner_l2
    assert get_attack("deepfool") is deepfool


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InputError, match=r"unknown attack 'fgsm'; known attacks: .*ddn.*deepfool"):
        get_attack("fgsm")


def test_register_and_refuse_clashes():
    def mine(model, inputs, labels, *, targeted=False):
        return inputs

    try:
        register_attack("identity-test", mine)
        assert get_attack("identity-test") is mine
        register_attack("identity-test", mine)  # same function again: fine
        with pytest.raises(InputError, match="already registered"):
            register_attack("identity-test", ddn)
        with pytest.raises(InputError, match="callable"):
            register_attack("other-test", 3)
    finally:
        ATTACKS.pop("identity-test", None)
