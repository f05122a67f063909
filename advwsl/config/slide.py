"""Configs of ``advwsl slide predict`` and ``advwsl slide attack``: a model over the tissue tiles of one whole
slide (:class:`SlidePredictConfig`), and the attack of its tiles (:class:`SlideAttackConfig`). They are the
commands' settings, classes by index or name; the job resolves them into :mod:`advwsl.wsi`'s settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from .core import Config, option
from .evaluation import check_levels
from .vocabulary import BATCH_SIZE, BUDGET, CHECKPOINT, DEVICE, LEVELS, MODEL, OUT, PROGRESS, RETRAIN, SEED

__all__ = ["SlidePredictConfig", "SlideAttackConfig", "AGGREGATIONS", "BACKENDS"]

Aggregation = Literal["max", "topk"]
Backend = Literal["auto", "openslide", "tifffile"]
AGGREGATIONS: tuple[str, ...] = Aggregation.__args__
BACKENDS: tuple[str, ...] = Backend.__args__


@dataclass(frozen=True)
class SlidePredictConfig(Config):
    """What :func:`advwsl.wsi.predict_slide` does on one slide.

    ``tile_size``: side in pixels of the tiles given to the model. ``mpp``, ``magnification``, ``level``,
    ``downsample``: the resolution of the tiles, at most one of them (none: level 0); ``mpp`` in µm/px and
    ``magnification`` (objective power, 10x = 1 µm/px, 20x = 0.5, 40x = 0.25) need the slide's microns per
    pixel; ``level`` is a pyramid level; ``downsample`` level-0 pixels per tile pixel. A pyramid level within
    5 % of the asked resolution is read as is. ``positive_class`` (index or name) gives the slide score:
    ``max`` of the tiles' positive probabilities, or ``topk``: the mean of the ``top_k`` largest.
    ``cam_class`` (index or name; default: the positive class) is stitched into the slide heatmap."""

    slide: str = option("", "")
    model: str = MODEL("wildcat", "Model: a built-in trained model, a checkpoint path, a zoo architecture with "
                                  "--checkpoint (`advwsl models`), or path/to/file.py:function returning an nn.Module. "
                                  "Its input is a tile of --tile-size pixels.")
    checkpoint: str | None = CHECKPOINT()
    tile_size: int = option(256, "Tile side in pixels, as the model sees it.", low=8)
    magnification: float | None = option(None, "Objective power of the tiles (10x = 1 um/px; needs the slide's mpp).",
                                         low=0, low_open=True)
    mpp: float | None = option(None, "Microns per pixel of the tiles (needs the slide's mpp).", low=0, low_open=True)
    level: int | None = option(None, "Pyramid level to tile.", low=0)
    downsample: float | None = option(None, "Level-0 pixels per tile pixel.", low=1)
    tissue_threshold: float = option(0.5, "Keep the tiles whose tissue share (Otsu on the thumbnail) is at least "
                                          "this.", low=0, high=1)
    thumbnail_downsample: float = option(32.0, "Level-0 pixels per pixel of the thumbnail, tissue mask and heatmaps.",
                                         low=1)
    batch_size: int = BATCH_SIZE(32)
    workers: int = option(0, "DataLoader worker processes reading tiles.", low=0)
    positive_class: str = option("1", "Class (index or name) whose probability gives the slide score.")
    cam_class: str | None = option(None, "Class (index or name) whose CAM is stitched into the slide heatmap "
                                         "(default: --positive-class).")
    aggregation: Aggregation = option("max", "Slide score: the largest tile probability, or the mean of the --top-k "
                                             "largest.")
    overlap: int = option(0, "Tile pixels shared by neighbouring tiles (stride = --tile-size minus this); where tiles "
                             "overlap, the maps are the mean of their values.", low=0)
    heatmap_downsample: float | None = option(None, "Level-0 pixels per pixel of the stitched maps (default: "
                                                    "--thumbnail-downsample; smaller is finer).", low=1)
    stain_norm: Literal["macenko", "reinhard"] | None = option(
        None, "Stain-normalize the tiles before the model (Macenko to its published reference stain, or Reinhard to "
              "--stain-reference), the slide's stain estimated on its thumbnail.")
    stain_reference: str | None = option(None, "Image whose stain is the target (needed by --stain-norm reinhard).")
    top_k: int = option(10, "k of --aggregation topk.", low=1)
    backend: Backend = option("auto", "Slide reader (auto: OpenSlide when it reads the file).")
    device: str | None = DEVICE()
    out: str | None = OUT()
    retrain: bool = RETRAIN()
    progress: bool = PROGRESS()

    def __post_init__(self) -> None:
        for name in ("positive_class", "cam_class"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, str(value))
        if isinstance(self.slide, Path):
            object.__setattr__(self, "slide", str(self.slide))
        super().__post_init__()

    def check(self) -> None:
        given = {k: getattr(self, k) for k in ("mpp", "magnification", "level", "downsample")
                 if getattr(self, k) is not None}
        if len(given) > 1:
            raise ConfigError(f"give at most one of --mpp, --magnification, --level and --downsample, got {given}")
        if not self.slide or not Path(self.slide).is_file():
            raise ConfigError(f"slide {self.slide!r} not found (give the path of a slide file)")
        if self.overlap >= self.tile_size:
            raise ConfigError(f"--overlap must be smaller than --tile-size ({self.tile_size}), got {self.overlap}")
        if self.stain_norm == "reinhard" and self.stain_reference is None:
            raise ConfigError("--stain-norm reinhard needs --stain-reference IMAGE (the target's stain)")


@dataclass(frozen=True)
class SlideAttackConfig(SlidePredictConfig):
    """What :func:`advwsl.wsi.attack_slide` attacks and how: a registered minimal-norm label attack at
    ``budget``; the candidates are the tissue tiles predicted as another class than ``target`` (default: any
    class but the positive one, which hides the positive tiles of a 2-class model). With two classes the
    attack is untargeted (away from the predicted class, the same goal); with more it is targeted at
    ``target``. At most ``max_tiles`` candidates are attacked, those of highest positive probability first
    (the tiles that decide a max or top-k slide score). The positive region of the stitched CAM is where the
    map, scaled to [0, 1] by the clean map's minimum and maximum over the tiles, is at least
    ``cam_threshold``."""

    attack: str = option("ddn", "Minimal-norm attack of the tiles (ddn, cw, deepfool, ...).")
    budget: tuple[str, ...] = BUDGET(renamed_from=("--steps",))
    target: str | None = option(None, "Class (index or name) the tiles are pushed to (default: a 2-class model's "
                                      "other class than --positive-class).", renamed_from=("--target-class",))
    max_tiles: int = option(64, "Attack at most this many tiles, the most positive first.", low=1)
    levels: int = LEVELS()
    cam_threshold: float = option(0.5, "", low=0, low_open=True, high=1)
    seed: int = SEED()
    keep_adversarials: bool = option(False, "")

    def __post_init__(self) -> None:
        if isinstance(self.target, int) and not isinstance(self.target, bool):
            object.__setattr__(self, "target", str(self.target))
        super().__post_init__()

    def check(self) -> None:
        super().check()
        check_levels(self.levels)
