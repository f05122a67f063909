"""Imports of peer libraries shared by the benchmark scripts."""

from __future__ import annotations

import sys
import types


def import_adv_lib_ddn():
    """adv_lib's ddn. adv_lib imports visdom (a plotting server that does not build here) only for its
    optional logger: an empty stand-in module lets the attack itself import."""
    try:
        import visdom  # noqa: F401
    except ImportError:
        sys.modules["visdom"] = types.ModuleType("visdom")
    from adv_lib.attacks import ddn as adv_lib_ddn

    return adv_lib_ddn
