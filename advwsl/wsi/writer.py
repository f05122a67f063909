"""Files of a slide prediction and of a slide attack, written into an existing (run) directory. No file is
ever replaced: if any of the files to write exists, nothing is written.

Prediction: ``tiles.csv`` (one row per tile), ``summary.json`` (slide score, counts, tiling, settings, the
slide's properties), ``thumbnail.png``, ``tissue_mask.png``, ``heatmap_<class>.png`` for every class (the
tiles' probability over the thumbnail), ``cam_heatmap.png`` (the stitched CAM over the thumbnail, for a WSL
model) and ``maps.npz`` (the maps as arrays, NaN off the tiles).

Attack: the same, with the attack's aggregates under ``"attack"`` in ``summary.json``, plus
``attack_tiles.csv`` (one row per attacked tile), ``cam_heatmap_attacked.png`` and
``cam_before_after.png`` (both CAMs on the clean map's colour scale with their positive regions).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io import write_json
from ..plotting import plot_slide_attack, plot_slide_map
from .attack import SlideAttack
from .predict import SlidePrediction
from .stitch import finite_range


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "class"


def _check_targets(out_dir: Path, names: list[str]) -> None:
    if not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} does not exist; create it first (a run directory from "
                          f"advwsl.runs.create_run_dir)")
    taken = [n for n in names if (out_dir / n).exists()]
    if taken:
        raise ConfigError(f"{out_dir} already holds {taken}; refusing to overwrite (choose a new output folder)")


def _prediction_files(result: SlidePrediction) -> list[str]:
    names = ["tiles.csv", "summary.json", "thumbnail.png", "tissue_mask.png", "maps.npz"]
    names += [f"heatmap_{_slug(c)}.png" for c in result.classes]
    return names + (["cam_heatmap.png"] if result.cam_map is not None else [])


def _write_prediction(result: SlidePrediction, out: Path, summary: dict, extra_maps: dict) -> list[Path]:
    from PIL import Image

    written = []
    tiles = out / "tiles.csv"
    result.tiles().to_csv(tiles, index=False)
    written.append(tiles)
    written.append(write_json(out / "summary.json", summary))
    Image.fromarray(result.thumbnail).save(out / "thumbnail.png")
    Image.fromarray(result.tissue_mask.astype(np.uint8) * 255).save(out / "tissue_mask.png")
    written += [out / "thumbnail.png", out / "tissue_mask.png"]
    name = Path(result.slide["path"]).name
    scale = result.map_downsample / result.thumbnail_downsample
    for k, cls in enumerate(result.classes):
        written.append(plot_slide_map(result.thumbnail, result.class_map(k), out / f"heatmap_{_slug(cls)}.png",
                                      label=f"P({cls})", title=f"{name}: probability of {cls} per tile",
                                      map_scale=scale))
    maps = {"tissue_mask": result.tissue_mask, "thumbnail_downsample": np.float64(result.thumbnail_downsample),
            "map_downsample": np.float64(result.map_downsample)}
    if result.cam_map is not None:
        lo, hi = finite_range(result.cam_map)
        cls = result.classes[result.config.cam_class]
        written.append(plot_slide_map(result.thumbnail, result.cam_map, out / "cam_heatmap.png", vmin=lo, vmax=hi,
                                      label=f"CAM of {cls}", title=f"{name}: stitched CAM of {cls} "
                                      f"(slide score {result.score:.3f})", map_scale=scale))
        maps["cam_map"] = result.cam_map
    np.savez_compressed(out / "maps.npz", **maps, **extra_maps)
    written.append(out / "maps.npz")
    return written


def write_slide_prediction(result: SlidePrediction, out_dir: str | Path) -> list[Path]:
    """Write the files of a slide prediction (see the module docstring) into the existing ``out_dir``;
    returns their paths."""
    out = Path(out_dir)
    _check_targets(out, _prediction_files(result))
    return _write_prediction(result, out, result.summary(), {})


def write_slide_attack(result: SlideAttack, out_dir: str | Path) -> list[Path]:
    """Write the files of a slide attack (see the module docstring) into the existing ``out_dir``; returns
    their paths."""
    out = Path(out_dir)
    pred = result.prediction
    extra = ["attack_tiles.csv"]
    if result.cam_map_after is not None:
        extra += ["cam_heatmap_attacked.png", "cam_before_after.png"]
    _check_targets(out, _prediction_files(pred) + extra)
    maps = {} if result.cam_map_after is None else {"cam_map_attacked": result.cam_map_after}
    written = _write_prediction(pred, out, {**pred.summary(), "attack": result.summary()}, maps)
    result.tiles.to_csv(out / "attack_tiles.csv", index=False)
    written.append(out / "attack_tiles.csv")
    if result.cam_map_after is not None:
        scale = pred.map_downsample / pred.thumbnail_downsample
        lo, hi = finite_range(pred.cam_map)
        level = lo + result.config.cam_threshold * (hi - lo)
        cls = pred.classes[pred.config.cam_class]
        s = result.summary()
        written.append(plot_slide_map(pred.thumbnail, result.cam_map_after, out / "cam_heatmap_attacked.png",
                                      vmin=lo, vmax=hi, label=f"CAM of {cls} (clean scale)",
                                      title=f"after {s['attack']} on {s['attacked']} tiles "
                                      f"(slide score {result.score_after:.3f})", map_scale=scale))
        written.append(plot_slide_attack(
            pred.thumbnail, pred.cam_map, result.cam_map_after, out / "cam_before_after.png", vmin=lo, vmax=hi,
            contour=level, label=f"CAM of {cls}", map_scale=scale,
            titles=(f"clean: slide score {result.score_before:.3f}",
                    f"attacked ({s['attacked']} tiles): {result.score_after:.3f}"),
            title=f"positive region (CAM >= {result.config.cam_threshold:g} of the clean range): "
                  f"Dice {result.region_dice:.3f}"))
    return written
