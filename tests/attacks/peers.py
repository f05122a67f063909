"""Peer libraries for the tests of the attacks beyond the reference (installed with the ``peers`` extra; the
tests that use them are skipped when they are absent)."""

from __future__ import annotations

import sys
import types

import pytest


def adv_lib_attacks() -> types.ModuleType:
    """``adv_lib.attacks``, or skip. adv_lib imports visdom (a plotting server) only for its optional logger:
    an empty stand-in lets the attacks import where visdom is not installed."""
    pytest.importorskip("adv_lib")
    try:
        import visdom  # noqa: F401
    except ImportError:
        sys.modules.setdefault("visdom", types.ModuleType("visdom"))
    import adv_lib.attacks

    return adv_lib.attacks


def torchattacks() -> types.ModuleType:
    """``torchattacks``, or skip."""
    return pytest.importorskip("torchattacks")
