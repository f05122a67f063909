"""Whole slides: tiling at a chosen magnification (:mod:`.tiling`), model inference over a slide with
stitched class-score and CAM heatmaps (:mod:`.predict`, :mod:`.stitch`), the attack of its tiles and what it
does to the slide score and the heatmap (:mod:`.attack`), and the files both write (:mod:`.writer`).
Reading slides (any format OpenSlide reads; tifffile for plain TIFFs) and tissue detection are data-level:
:mod:`advwsl.data.slides` and :mod:`advwsl.data.tissue`."""

from ..data.slides import SLIDE_EXTENSIONS, Slide, open_slide, openslide_available
from ..data.tissue import otsu_tissue, tissue_map
from .attack import SlideAttack, attack_slide
from .config import SlideAttackConfig, SlideConfig
from .predict import SlidePrediction, check_slide_config, predict_slide, resolve_classes
from .tiling import TileGrid, make_tile_grid, resolve_downsample
from .writer import write_slide_attack, write_slide_prediction

__all__ = ["SLIDE_EXTENSIONS", "Slide", "SlideAttack", "SlideAttackConfig", "SlideConfig", "SlidePrediction",
           "TileGrid", "attack_slide", "check_slide_config", "make_tile_grid", "open_slide", "openslide_available", "otsu_tissue",
           "predict_slide", "resolve_classes", "resolve_downsample", "tissue_map", "write_slide_attack", "write_slide_prediction"]
