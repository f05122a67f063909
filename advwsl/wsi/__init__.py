"""Whole-slide images: reading (:mod:`.reader`), tissue detection (:mod:`.tissue`) and tiling
(:mod:`.tiling`); model inference over a slide with stitched class activation maps (:mod:`.predict`), the
DDN attack of its tiles (:mod:`.attack`) and the files both write (:mod:`.writer`).

The reader and tissue modules are imported here; the others load on first use (they import torch, the
models and the attacks, which the data loaders that read slides do not need).
"""

from __future__ import annotations

import importlib
from typing import Any

from .reader import SLIDE_EXTENSIONS, Slide, open_slide, openslide_available
from .tissue import otsu_tissue, tissue_map

_LAZY = {"SlideConfig": "config", "SlideAttackConfig": "config", "predict_slide": "predict",
         "SlidePrediction": "predict", "attack_slide": "attack", "SlideAttack": "attack",
         "write_slide_prediction": "writer", "write_slide_attack": "writer",
         "TileGrid": "tiling", "make_tile_grid": "tiling", "resolve_downsample": "tiling"}

__all__ = ["SLIDE_EXTENSIONS", "Slide", "open_slide", "openslide_available", "otsu_tissue", "tissue_map",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
