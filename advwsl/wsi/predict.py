"""Model inference over a whole slide in bounded memory, with the slide's heatmaps.

The slide is read once as a thumbnail (the tissue mask is Otsu's on it, :mod:`.tissue`), then as a grid of
tissue tiles (:mod:`.tiling`) read lazily in batches by a DataLoader. Of each batch only small things are
kept: per tile its logits, and for a WSL model (one with ``cams(x)``) its CAM of ``cam_class`` pasted into a
thumbnail-resolution canvas (:mod:`.stitch`). Tile pixels and full-size CAMs are dropped after each batch,
so memory is the thumbnail-resolution maps, one number per tile and class, and the batches in flight.

Slide score: the probability of ``positive_class`` aggregated over the tissue tiles, either its maximum
(``aggregation="max"``: the most suspicious tile decides, the multiple-instance rule) or the mean of the
``top_k`` largest (``"topk"``: one false-positive tile weighs ``1 / top_k``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

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


def _check_outputs(logits: Any, cams: Any, n: int, cfg: SlideConfig) -> int:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(f"the model must return logits (N, C) with C >= 2 for a batch of {n} tiles, got {shape}")
    c = int(logits.shape[1])
    for name in ("cam_class", "positive_class"):
        if getattr(cfg, name) >= c:
            raise ConfigError(f"{name} = {getattr(cfg, name)} but the model has {c} classes (0 to {c - 1})")
    if cams is not None and (cams.dim() != 4 or tuple(cams.shape[:2]) != (n, c)):
        raise ModelError(f"model.cams must return CAMs (N, C, h, w) = ({n}, {c}, h, w), got {tuple(cams.shape)}")
    return c


def _class_names(names: Sequence[str] | None, n_classes: int) -> tuple[str, ...]:
    if names is None:
        return tuple(f"class_{k}" for k in range(n_classes))
    if len(names) != n_classes:
        raise InputError(f"{len(names)} class names {list(names)} for a model of {n_classes} classes")
    return tuple(str(n) for n in names)


@dataclass(frozen=True, eq=False)
class SlidePrediction:
    """What :func:`predict_slide` found on one slide.

    ``slide``: :meth:`Slide.summary` (path, dimensions, levels, mpp, properties); ``grid``: the tiles
    scored; ``logits``: (tiles, classes); ``score``: the slide score (see the module docstring);
    ``thumbnail`` (uint8 RGB), ``tissue_mask`` (bool) and ``cam_map`` (float32, the raw CAM of
    ``config.cam_class`` stitched, NaN off the tiles; None without CAMs) all at ``thumbnail_downsample``;
    ``n_grid``: tiles of the whole grid before the tissue filter; ``seconds``: wall time.
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
        canvas = SlideCanvas(self.tissue_mask.shape, self.thumbnail_downsample)
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
            "read_level": g.level, "read_size": g.read_size,
            "thumbnail_downsample": self.thumbnail_downsample, "otsu_threshold": self.otsu_threshold,
            "tissue_share_of_slide": float(self.tissue_mask.mean()), "has_cams": self.cam_map is not None,
            "seconds": self.seconds, "tiles_per_second": len(g) / self.seconds if self.seconds > 0 else None,
            "classes": list(self.classes), "config": {k: str(v) if k == "slide" else v for k, v in vars(cfg).items()},
            "slide": self.slide,
        }


def predict_slide(model: nn.Module, config: SlideConfig, *, classes: Sequence[str] | None = None) -> SlidePrediction:
    """Run ``model`` over the tissue tiles of ``config.slide`` (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        Returns logits (N, C) for images (N, 3, T, T) in [0, 1]; a WSL model's ``cams(x)`` also gives the
        CAMs stitched into :attr:`SlidePrediction.cam_map`. Run in eval mode without gradients and left as
        it was; moved to ``config.device`` when one is given.
    config : SlideConfig
        The slide, tiling, batching and scoring settings (validated first).
    classes : names of the classes (default: ``model.classes`` if it has them, else ``class_<k>``).

    Returns
    -------
    SlidePrediction
    """
    from tqdm.auto import tqdm

    config.validate()
    device = place_model(model, config.device)
    tic = time.perf_counter()
    with open_slide(config.slide, backend=config.backend) as slide:
        thumbnail, thumb_ds = slide.read_thumbnail(config.thumbnail_downsample)
        otsu, tissue = otsu_tissue(thumbnail)
        ds = resolve_downsample(slide, mpp=config.mpp, magnification=config.magnification, level=config.level,
                                downsample=config.downsample)
        everything = make_tile_grid(slide, config.tile_size, ds, tissue, thumb_ds, tissue_threshold=0.0)
        description = slide.summary()
    grid = everything.subset(everything.tissue >= config.tissue_threshold)
    if len(everything) == 0:
        w, h = description["dimensions"]
        raise InputError(f"the slide ({w} x {h} px) is smaller than one tile ({everything.size0} level-0 px: "
                         f"tile_size {config.tile_size} at downsample {ds:g}); use a smaller tile_size or a finer "
                         f"resolution")
    if len(grid) == 0:
        raise InputError(f"no tile of {config.slide} has a tissue share >= {config.tissue_threshold} (the best has "
                         f"{everything.tissue.max():.2f}); lower tissue_threshold")

    canvas = SlideCanvas(tissue.shape, thumb_ds)
    logits_all: np.ndarray | None = None
    names: tuple[str, ...] = ()
    loader = tile_loader(config.slide, grid, batch_size=config.batch_size, workers=config.workers,
                         backend=config.backend)
    bar = tqdm(total=len(grid), desc=Path(config.slide).name, unit="tile", disable=not config.progress)
    with frozen(model), torch.no_grad():
        for images, index in loader:
            x = images.to(device).float().div_(255.0)
            logits, cams = model_outputs(model, x)
            if logits_all is None:
                c = _check_outputs(logits, cams, len(x), config)
                names = _class_names(classes if classes is not None else getattr(model, "classes", None), c)
                logits_all = np.empty((len(grid), c), np.float32)
            idx = index.numpy()
            logits_all[idx] = logits.float().cpu().numpy()
            if cams is not None:
                canvas.paste(cams[:, config.cam_class], grid.xs[idx], grid.ys[idx], grid.size0)
            bar.update(len(idx))
    bar.close()
    has_cams = hasattr(model, "cams")
    score = aggregate(softmax(logits_all)[:, config.positive_class], config.aggregation, config.top_k)
    return SlidePrediction(config, description, names, grid, logits_all, score, thumbnail, thumb_ds, tissue, otsu,
                           canvas.values if has_cams else None, len(everything), time.perf_counter() - tic)
