"""Model inference over a whole slide in bounded memory, with the slide's heatmaps.

The slide is read once as a thumbnail (the tissue mask is Otsu's on it, :mod:`.tissue`), then as a grid of
tissue tiles (:mod:`.tiling`) read lazily in batches by a DataLoader. Of each batch only small things are
kept: per tile its logits, and for a WSL model (one with ``cams(x)``) its CAM of ``cam_class`` pasted into a
thumbnail-resolution canvas (:mod:`.stitch`). Tile pixels and full-size CAMs are dropped after each batch,
so memory is the thumbnail-resolution maps, one number per tile and class, and the batches in flight.

Slide score: the probability of ``positive_class`` aggregated over the tissue tiles, either its maximum
(``aggregation="max"``: the most suspicious tile decides, the multiple-instance rule) or the mean of the
``top_k`` largest (``"topk"``: one false-positive tile weighs ``1 / top_k``). Classes may be given by name
(``positive_class="malignant"``), resolved with the model's class names (:func:`resolve_classes`).

Options: overlapping tiles (``overlap``; maps average the tiles covering a pixel), maps finer than the
thumbnail (``heatmap_downsample``), stain normalization of every tile before the model (``stain_norm``: the
slide's stain is estimated once, on the tissue of its thumbnail, and mapped onto the target's). A model that
returns NaN or infinite logits or CAMs is refused with the tiles where it did (no score is made of them).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.stain import MACENKO_REFERENCE, StainStats, normalize_stain, stain_stats
from ..errors import ConfigError, InputError, ModelError
from ..utils import frozen, select_device
from .config import SlideConfig
from ..data.slides import open_slide
from .stitch import SlideCanvas
from .tiling import TileGrid, make_tile_grid, resolve_downsample, tile_loader
from ..data.tissue import otsu_tissue


def aggregate(probabilities: np.ndarray, aggregation: str = "max", top_k: int = 10) -> float:
    """Slide score from the tiles' positive-class probabilities: ``"max"``, or ``"topk"``: the mean of the
    ``top_k`` largest (all of them when there are fewer). NaN without tiles."""
    p = np.asarray(probabilities, np.float64)
    if p.size == 0:
        return float("nan")
    if aggregation == "max":
        return float(p.max())
    if aggregation == "topk":
        return float(np.sort(p)[::-1][:top_k].mean())
    raise ConfigError(f"aggregation must be 'max' or 'topk', got {aggregation!r}")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def model_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits (N, C), CAMs (N, C, h, w) or None for a model without ``cams``)."""
    if hasattr(model, "cams"):
        return model.cams(x)
    return model(x), None


def place_model(model: nn.Module, device: str | None) -> torch.device:
    """The device to run on: ``device`` (the model is moved there), else the model's own."""
    if device is not None:
        dev = select_device(device)
        model.to(dev)
        return dev
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _check_outputs(logits: Any, cams: Any, n: int, cfg: SlideConfig, names: Sequence[str] | None = None) -> int:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(f"the model must return logits (N, C) with C >= 2 for a batch of {n} tiles, got {shape}")
    c = int(logits.shape[1])
    if cams is not None and (cams.dim() != 4 or tuple(cams.shape[:2]) != (n, c)):
        raise ModelError(f"model.cams must return CAMs (N, C, h, w) = ({n}, {c}, h, w), got {tuple(cams.shape)}")
    return c


def _check_indices(cfg: SlideConfig, c: int) -> None:
    for name in ("cam_class", "positive_class"):
        if getattr(cfg, name) >= c:
            raise ConfigError(f"{name} = {getattr(cfg, name)} but the model has {c} classes (0 to {c - 1})")


def _class_names(names: Sequence[str] | None, n_classes: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"class_{k}" for k in range(n_classes))
    if len(names) != n_classes:
        raise InputError(f"{len(names)} class names {list(names)} for a model of {n_classes} classes")
    return tuple(str(n) for n in names)


def resolve_class(value: int | str, classes: Sequence[str] | None, what: str = "positive_class") -> int:
    """The index of class ``value``: an index as it is, a name looked up in ``classes`` (the model's class
    names); a name without class names, or one not among them, is a :class:`ConfigError` listing them."""
    if not isinstance(value, str):
        return int(value)
    names = [str(c) for c in classes] if classes is not None else None
    if names is None:
        raise ConfigError(f"{what} {value!r} is a class name, but the model records no class names; give the "
                          "class index, or the class names (classes=[...])")
    if value not in names:
        folded = [n for n in names if n.lower() == value.lower()]
        if len(folded) == 1:
            return names.index(folded[0])
        raise ConfigError(f"{what} {value!r} is not a class of the model; its classes are "
                          f"{', '.join(f'{k}: {n}' for k, n in enumerate(names))}")
    return names.index(value)


def resolve_classes(config: SlideConfig, classes: Sequence[str] | None) -> SlideConfig:
    """``config`` with ``positive_class`` and ``cam_class`` as indices (names resolved in ``classes``)."""
    return dataclasses.replace(config, positive_class=resolve_class(config.positive_class, classes),
                               cam_class=resolve_class(config.cam_class, classes, "cam_class"))


def check_finite_outputs(logits: torch.Tensor, cams: torch.Tensor | None, grid: TileGrid, idx: np.ndarray,
                  what: str = "the model") -> None:
    """Refuse NaN or infinite outputs, naming the first tiles where they are."""
    bad = ~torch.isfinite(logits.detach()).all(dim=1)
    if cams is not None:
        bad |= ~torch.isfinite(cams.detach()).flatten(1).all(dim=1)
    if bool(bad.any()):
        where = [f"({int(grid.xs[k])}, {int(grid.ys[k])})" for k in idx[bad.cpu().numpy()][:3]]
        raise ModelError(f"{what} returned NaN or infinite logits or CAMs on {int(bad.sum())} of {len(idx)} tiles of "
                         f"this batch (level-0 corners {', '.join(where)}); a slide score cannot be made of them. "
                         "Check the model's weights and its input normalization (tiles are RGB in [0, 1])")


def slide_stain(config: SlideConfig, thumbnail: np.ndarray,
                tissue: np.ndarray) -> tuple[StainStats, StainStats | None] | None:
    """``(target, source)`` of the stain normalization of ``config`` (None without one): the target is the
    reference image's stain (or Macenko's published reference), the source the slide's own, estimated once
    on the tissue pixels of its thumbnail (None: too little tissue, each tile is estimated on its own)."""
    if config.stain_norm is None:
        return None
    from ..data.base import read_image

    method = config.stain_norm
    target = (stain_stats(read_image(config.stain_reference), method) if config.stain_reference is not None
              else MACENKO_REFERENCE)
    if target is None:
        raise InputError(f"the stain reference {config.stain_reference} shows too little tissue to estimate a stain")
    pixels = torch.from_numpy(thumbnail[tissue].T.copy()).float().div_(255.0)[:, None, :]  # (3, 1, n)
    source = stain_stats(pixels, method) if pixels.shape[-1] else None
    return target, source


def prepare_tiles(x: torch.Tensor, stain: tuple[StainStats, StainStats | None] | None) -> torch.Tensor:
    """Tiles (N, 3, T, T) in [0, 1] as the model sees them: stain-normalized when ``stain`` is given."""
    return x if stain is None else normalize_stain(x, stain[0], source=stain[1])


@dataclass(frozen=True, eq=False)
class SlidePrediction:
    """What :func:`predict_slide` found on one slide.

    ``slide``: :meth:`Slide.summary` (path, dimensions, levels, mpp, properties); ``grid``: the tiles
    scored; ``logits``: (tiles, classes); ``score``: the slide score (see the module docstring);
    ``thumbnail`` (uint8 RGB), ``tissue_mask`` (bool) and ``cam_map`` (float32, the raw CAM of
    ``config.cam_class`` stitched, NaN off the tiles; None without CAMs) all at ``thumbnail_downsample``;
    ``n_grid``: tiles of the whole grid before the tissue filter; ``seconds``: wall time. ``cam_map`` and
    :meth:`class_map` are at ``heatmap_downsample`` (``coverage``: how many tiles cover each of their
    pixels); ``stain``: the (target, source) stain statistics the tiles were normalized with, or None.
    ``config`` holds the classes as indices (names resolved).
    """

    config: SlideConfig
    slide: dict
    classes: tuple[str, ...]
    grid: TileGrid
    logits: np.ndarray
    score: float
    thumbnail: np.ndarray
    thumbnail_downsample: float
    tissue_mask: np.ndarray
    otsu_threshold: float
    cam_map: np.ndarray | None
    n_grid: int
    seconds: float
    heatmap_downsample: float | None = None
    coverage: np.ndarray | None = None
    stain: tuple[StainStats, StainStats | None] | None = None

    @property
    def map_downsample(self) -> float:
        """Level-0 pixels per pixel of the maps (:attr:`cam_map`, :meth:`class_map`)."""
        return self.heatmap_downsample or self.thumbnail_downsample

    @property
    def map_shape(self) -> tuple[int, int]:
        return self.coverage.shape if self.coverage is not None else self.tissue_mask.shape

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of the logits, (tiles, classes)."""
        return softmax(self.logits)

    def tiles(self) -> pd.DataFrame:
        """One row per tile: level-0 ``x``, ``y``, ``size`` (level-0 side), ``tissue`` share, ``pred``, and
        ``prob_<class>`` and ``logit_<class>`` for every class."""
        g, p = self.grid, self.probabilities
        table = pd.DataFrame({"x": g.xs, "y": g.ys, "size": g.size0, "tissue": g.tissue,
                              "pred": self.logits.argmax(axis=1) if len(g) else np.zeros(0, np.int64)})
        for k, name in enumerate(self.classes):
            table[f"prob_{name}"] = p[:, k]
        for k, name in enumerate(self.classes):
            table[f"logit_{name}"] = self.logits[:, k]
        return table

    def class_map(self, k: int) -> np.ndarray:
        """The probability of class ``k`` painted over each tile's box at thumbnail resolution (NaN off the
        tiles)."""
        canvas = SlideCanvas(self.map_shape, self.map_downsample)
        canvas.paint(self.probabilities[:, k], self.grid.xs, self.grid.ys, self.grid.size0)
        return canvas.values

    def summary(self) -> dict:
        """Slide score, counts, the tiling and the settings, and the slide's description (JSON-ready)."""
        cfg, g = self.config, self.grid
        mpp = self.slide.get("mpp")
        return {
            "slide_score": self.score, "positive_class": self.classes[cfg.positive_class],
            "aggregation": cfg.aggregation, "top_k": cfg.top_k if cfg.aggregation == "topk" else None,
            "tiles": len(g), "grid_tiles": self.n_grid,
            "tiles_predicted": {name: int((self.logits.argmax(1) == k).sum()) for k, name in enumerate(self.classes)},
            "tile_size": g.tile_size, "tile_size_level0": g.size0, "downsample": g.downsample,
            "tile_mpp": None if mpp is None else g.downsample * (mpp[0] + mpp[1]) / 2,
            "read_level": g.level, "read_size": g.read_size, "overlap": cfg.overlap, "stride_level0": g.stride0,
            "thumbnail_downsample": self.thumbnail_downsample, "heatmap_downsample": self.map_downsample,
            "stain_norm": cfg.stain_norm, "otsu_threshold": self.otsu_threshold,
            "tissue_share_of_slide": float(self.tissue_mask.mean()), "has_cams": self.cam_map is not None,
            "seconds": self.seconds, "tiles_per_second": len(g) / self.seconds if self.seconds > 0 else None,
            "classes": list(self.classes), "config": {k: str(v) if k == "slide" else v for k, v in vars(cfg).items()},
            "slide": self.slide,
        }


def check_slide_config(config: SlideConfig, classes: Sequence[str] | None = None) -> SlideConfig:
    """Check ``config`` against its slide before any model work (what :func:`predict_slide` would refuse
    later): the settings, the slide readable (its first tile decoded), the resolution, the thumbnail
    downsample and the tile size, and the classes against ``classes`` (the model's names) when given. Returns the config with its classes
    as indices (when ``classes`` is given)."""
    from ..data.slides import check_thumbnail_downsample

    config.validate()
    with open_slide(config.slide, backend=config.backend) as slide:
        check_thumbnail_downsample(slide, config.thumbnail_downsample)
        slide.read_region((0, 0), slide.level_count - 1, (1, 1))  # a tile decodes (codecs present, data intact)
        ds = resolve_downsample(slide, mpp=config.mpp, magnification=config.magnification, level=config.level,
                                downsample=config.downsample)
        w, h = slide.dimensions
    size0 = max(1, int(round(config.tile_size * ds)))
    if size0 > min(w, h):
        raise InputError(f"the slide ({w} x {h} px) is smaller than one tile ({size0} level-0 px: tile_size "
                         f"{config.tile_size} at downsample {ds:g}); use a smaller tile_size or a finer resolution")
    if classes is None:
        return config
    config = resolve_classes(config, classes)
    _check_indices(config, len(classes))
    return config


def predict_slide(model: nn.Module, config: SlideConfig, *, classes: Sequence[str] | None = None) -> SlidePrediction:
    """Run ``model`` over the tissue tiles of ``config.slide`` (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, C) for images (N, 3, T, T) in [0, 1]; a WSL model's ``cams(x)`` also gives the
        CAMs stitched into :attr:`SlidePrediction.cam_map`. Run in eval mode without gradients and left as
        it was; moved to ``config.device`` when one is given.
    config : SlideConfig
        The slide, tiling, batching and scoring settings (validated first); ``positive_class`` and
        ``cam_class`` may be class names.
    classes : names of the classes (default: ``model.classes`` if it has them, else ``class_<k>``).

    Returns
    -------
    SlidePrediction
    """
    config.validate()
    names = classes if classes is not None else getattr(model, "classes", None)
    if names is not None:
        config = resolve_classes(config, names)
    device = place_model(model, config.device)
    tic = time.perf_counter()
    thumbnail, thumb_ds, otsu, tissue, everything, description = _tiles(config)
    grid = everything.subset(everything.tissue >= config.tissue_threshold)
    stain = slide_stain(config, thumbnail, tissue)
    map_ds = config.heatmap_downsample or thumb_ds
    w, h = description["dimensions"]
    canvas = SlideCanvas(tissue.shape if map_ds == thumb_ds else (math.ceil(h / map_ds), math.ceil(w / map_ds)),
                         map_ds)
    config, names, logits = _run_tiles(model, config, grid, canvas, device, names, stain)
    coverage = SlideCanvas(canvas.total.shape, map_ds)
    coverage.paint(np.ones(len(grid)), grid.xs, grid.ys, grid.size0)
    score = aggregate(softmax(logits)[:, config.positive_class], config.aggregation, config.top_k)
    return SlidePrediction(config, description, names, grid, logits, score, thumbnail, thumb_ds, tissue, otsu,
                           canvas.values if hasattr(model, "cams") else None, len(everything),
                           time.perf_counter() - tic, config.heatmap_downsample, coverage.coverage, stain)


def _tiles(config: SlideConfig) -> tuple[np.ndarray, float, float, np.ndarray, TileGrid, dict]:
    """Thumbnail, its downsample, Otsu threshold and tissue mask, the whole grid (tissue shares measured)
    and the slide's description; a slide smaller than a tile or without a tissue tile is refused."""
    with open_slide(config.slide, backend=config.backend) as slide:
        thumbnail, thumb_ds = slide.read_thumbnail(config.thumbnail_downsample)
        otsu, tissue = otsu_tissue(thumbnail)
        ds = resolve_downsample(slide, mpp=config.mpp, magnification=config.magnification, level=config.level,
                                downsample=config.downsample)
        everything = make_tile_grid(slide, config.tile_size, ds, tissue, thumb_ds, tissue_threshold=0.0,
                                    overlap=config.overlap)
        description = slide.summary()
    if len(everything) == 0:
        w, h = description["dimensions"]
        raise InputError(f"the slide ({w} x {h} px) is smaller than one tile ({everything.size0} level-0 px: "
                         f"tile_size {config.tile_size} at downsample {ds:g}); use a smaller tile_size or a finer "
                         f"resolution")
    if not (everything.tissue >= config.tissue_threshold).any():
        raise InputError(f"no tile of {config.slide} has a tissue share >= {config.tissue_threshold} (the best has "
                         f"{everything.tissue.max():.2f}); lower tissue_threshold")
    return thumbnail, thumb_ds, otsu, tissue, everything, description


def _run_tiles(model: nn.Module, config: SlideConfig, grid: TileGrid, canvas: SlideCanvas, device: torch.device,
               names: Sequence[str] | None, stain: Any) -> tuple[SlideConfig, tuple[str, ...], np.ndarray]:
    """The model over every tile, batch by batch: the logits (tiles, classes), the CAMs pasted into
    ``canvas``; the config with its classes resolved and the class names."""
    from tqdm.auto import tqdm

    logits_all: np.ndarray | None = None
    loader = tile_loader(config.slide, grid, batch_size=config.batch_size, workers=config.workers,
                         backend=config.backend)
    bar = tqdm(total=len(grid), desc=Path(config.slide).name, unit="tile", disable=not config.progress)
    with frozen(model), torch.no_grad():
        for images, index in loader:
            x = prepare_tiles(images.to(device).float().div_(255.0), stain)
            logits, cams = model_outputs(model, x)
            idx = index.numpy()
            if logits_all is None:
                c = _check_outputs(logits, cams, len(x), config, names)
                names = _class_names(names, c)
                config = resolve_classes(config, names)
                _check_indices(config, c)
                logits_all = np.empty((len(grid), c), np.float32)
            check_finite_outputs(logits, cams, grid, idx)
            logits_all[idx] = logits.float().cpu().numpy()
            if cams is not None:
                canvas.paste(cams[:, config.cam_class], grid.xs[idx], grid.ys[idx], grid.size0)
            bar.update(len(idx))
    bar.close()
    return config, tuple(names), logits_all
