"""Settings of slide inference and of the slide attack: two small frozen dataclasses whose fields map one to
one onto command-line options. ``validate()`` checks every value before anything is read or run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..attacks import get_attack_spec, list_attacks
from ..config.slide import AGGREGATIONS, BACKENDS
from ..errors import ConfigError

STAIN_NORMS = (None, "macenko", "reinhard")


def _positive_int(name: str, value: object, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _positive_number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class SlideConfig:
    """What :func:`advwsl.wsi.predict_slide` does on one slide.

    Parameters
    ----------
    slide : path of the slide file (any format of :mod:`advwsl.wsi.reader`).
    tile_size : side in pixels of the tiles given to the model.
    mpp, magnification, level, downsample : the resolution of the tiles, at most one of them (none: level 0).
        ``mpp`` in µm/px and ``magnification`` (objective power, 10x = 1 µm/px, 20x = 0.5, 40x = 0.25) need
        the slide's microns per pixel; ``level`` is a pyramid level; ``downsample`` level-0 pixels per tile
        pixel. A pyramid level within 5 % of the asked resolution is read as is.
    tissue_threshold : keep the tiles whose tissue share (Otsu mask) is at least this, in [0, 1].
    thumbnail_downsample : level-0 pixels per pixel of the thumbnail, of the tissue mask and of every map.
    batch_size, workers : tiles per model call; DataLoader worker processes reading tiles (0: in-process).
    cam_class : class whose CAM is stitched into the slide heatmap: an index, or a class name (resolved with
        the model's class names).
    positive_class : class whose probability gives the slide score (an index or a class name).
    overlap : tile pixels shared by neighbouring tiles (0: a grid of adjacent tiles); the stride is
        ``tile_size - overlap``; where tiles overlap, the maps are the mean of their values.
    heatmap_downsample : level-0 pixels per pixel of the stitched maps (None: ``thumbnail_downsample``);
        smaller gives finer maps (memory grows with its inverse square).
    stain_norm : None, ``"macenko"`` or ``"reinhard"``: tiles are stain-normalized before the model
        (:mod:`advwsl.data.stain`), with the slide's own stain estimated once on its thumbnail's tissue.
    stain_reference : image whose stain is the target (needed for Reinhard; Macenko's default target is the
        published reference stain).
    aggregation, top_k : slide score = ``"max"`` of the tiles' positive probabilities, or ``"topk"``: the
        mean of the ``top_k`` largest.
    device : ``"cpu"``, ``"cuda"``, ... (None: the model's device).
    backend : slide reader, ``"auto"``, ``"openslide"`` or ``"tifffile"``.
    progress : show a progress bar.
    """

    slide: str | Path
    tile_size: int = 256
    mpp: float | None = None
    magnification: float | None = None
    level: int | None = None
    downsample: float | None = None
    tissue_threshold: float = 0.5
    thumbnail_downsample: float = 32.0
    batch_size: int = 32
    workers: int = 0
    cam_class: int | str = 1
    positive_class: int | str = 1
    aggregation: str = "max"
    top_k: int = 10
    device: str | None = None
    backend: str = "auto"
    progress: bool = True
    overlap: int = 0
    heatmap_downsample: float | None = None
    stain_norm: str | None = None
    stain_reference: str | Path | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting."""
        _positive_int("tile_size", self.tile_size, 8)
        _positive_int("overlap", self.overlap, 0)
        if self.overlap >= self.tile_size:
            raise ConfigError(f"overlap must be smaller than tile_size ({self.tile_size}), got {self.overlap}")
        if self.heatmap_downsample is not None:
            _positive_number("heatmap_downsample", self.heatmap_downsample)
            if self.heatmap_downsample < 1:
                raise ConfigError(f"heatmap_downsample must be >= 1, got {self.heatmap_downsample}")
        if self.stain_norm not in STAIN_NORMS:
            raise ConfigError(f"stain_norm must be one of {STAIN_NORMS}, got {self.stain_norm!r}")
        if self.stain_norm == "reinhard" and self.stain_reference is None:
            raise ConfigError("Reinhard stain normalization needs a reference image (stain_reference) to take the "
                              "target colours from")
        if self.stain_reference is not None and not Path(self.stain_reference).is_file():
            raise ConfigError(f"stain_reference {self.stain_reference} not found (give an image file)")
        given = {k: getattr(self, k) for k in ("mpp", "magnification", "level", "downsample")
                 if getattr(self, k) is not None}
        if len(given) > 1:
            raise ConfigError(f"give at most one of mpp, magnification, level and downsample, got {given}")
        for name in ("mpp", "magnification", "downsample", "thumbnail_downsample"):
            if getattr(self, name) is not None:
                _positive_number(name, getattr(self, name))
        if self.downsample is not None and self.downsample < 1:
            raise ConfigError(f"downsample must be >= 1 (level-0 pixels per tile pixel), got {self.downsample}")
        if self.thumbnail_downsample < 1:
            raise ConfigError(f"thumbnail_downsample must be >= 1, got {self.thumbnail_downsample}")
        if self.level is not None:
            _positive_int("level", self.level, 0)
        if not isinstance(self.tissue_threshold, (int, float)) or not 0 <= self.tissue_threshold <= 1:
            raise ConfigError(f"tissue_threshold is a share in [0, 1], got {self.tissue_threshold!r}")
        _positive_int("batch_size", self.batch_size)
        _positive_int("workers", self.workers, 0)
        for name in ("cam_class", "positive_class"):
            value = getattr(self, name)
            if not (isinstance(value, str) and value.strip()):
                _positive_int(name, value, 0)
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        _positive_int("top_k", self.top_k)
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if not Path(self.slide).is_file():
            raise ConfigError(f"slide {self.slide} not found (give the path of a slide file)")


@dataclass(frozen=True)
class SlideAttackConfig:
    """What :func:`advwsl.wsi.attack_slide` attacks and how.

    Parameters
    ----------
    attack : a registered minimal-norm label attack (ddn, cw, deepfool), DDN by default.
    steps : the attack's number of steps (its budget).
    target_class : the class the tiles are pushed to. The candidates are the tissue tiles predicted as
        another class; the default 0 hides the positive (lesion) tiles of a 2-class model. With two classes
        the attack is untargeted (away from the predicted class, which is the same goal); with more it is
        targeted at ``target_class`` (DeepFool, untargeted only, then refuses).
    max_tiles : attack at most this many candidates, those of highest positive-class probability first
        (the tiles that decide a max or top-k slide score).
    levels : quantization of the adversarial tiles (256: 8-bit images; None: floats).
    cam_threshold : the positive region is where the stitched CAM, scaled to [0, 1] by the clean map's
        minimum and maximum over the tiles, is at least this.
    seed : seed of the attack's random directions.
    keep_adversarials : keep the adversarial tiles (uint8) in the result; off to bound memory.
    """

    attack: str = "ddn"
    steps: int = 100
    target_class: int = 0
    max_tiles: int = 64
    levels: int | None = 256
    cam_threshold: float = 0.5
    seed: int = 0
    keep_adversarials: bool = False

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid setting."""
        # a budget attack such as PGD needs an epsilon and the CAM attack keeps the label: neither fits "how
        # far is each tile from another class"
        usable = [n for n in list_attacks("label") if get_attack_spec(n).minimal_norm]
        if self.attack not in usable:
            raise ConfigError(f"attack must be a minimal-norm attack, one of {', '.join(usable)}, got "
                              f"{self.attack!r}")
        _positive_int("steps", self.steps)
        _positive_int("target_class", self.target_class, 0)
        _positive_int("max_tiles", self.max_tiles)
        if self.levels is not None:
            _positive_int("levels", self.levels, 2)
        if not isinstance(self.cam_threshold, (int, float)) or not 0 < self.cam_threshold <= 1:
            raise ConfigError(f"cam_threshold must lie in (0, 1], got {self.cam_threshold!r}")
