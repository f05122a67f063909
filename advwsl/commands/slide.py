"""``advwsl slide predict`` and ``advwsl slide attack``: wiring of :mod:`advwsl.jobs.slide`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..jobs.slide import slide_attack_job, slide_predict_job
from ..wsi import SlideAttackConfig, SlideConfig
from .options import batch_size, checkpoint, device, echo_err, levels, model, out, progress, retrain, seed


def _class_index(ctx: click.Context, param: click.Parameter, value: str) -> int:
    if not str(value).isdigit():
        raise click.BadParameter(f"{value!r} is not a class index (0, 1, ...)")
    return int(value)


def _slide_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by both slide commands: model, tiling, inference."""
    decorators = [
        click.argument("slide", type=click.Path(dir_okay=False, exists=True)),
        model("wildcat", "Model: a built-in trained model, a checkpoint path, a zoo architecture with "
                         "--checkpoint (`advwsl models`), or path/to/file.py:function returning an nn.Module. Its "
                         "input is a tile of --tile-size pixels."),
        checkpoint,
        click.option("--tile-size", type=click.IntRange(min=8), default=256, show_default=True,
                     help="Tile side in pixels, as the model sees it."),
        click.option("--magnification", type=float, default=None,
                     help="Objective power of the tiles (10x = 1 um/px; needs the slide's mpp)."),
        click.option("--mpp", type=float, default=None, help="Microns per pixel of the tiles (needs the slide's mpp)."),
        click.option("--level", type=click.IntRange(min=0), default=None, help="Pyramid level to tile."),
        click.option("--downsample", type=float, default=None, help="Level-0 pixels per tile pixel."),
        click.option("--tissue-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                     help="Keep the tiles whose tissue share (Otsu on the thumbnail) is at least this."),
        click.option("--thumbnail-downsample", type=float, default=32.0, show_default=True,
                     help="Level-0 pixels per pixel of the thumbnail, tissue mask and heatmaps."),
        batch_size(32),
        click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="DataLoader worker processes reading tiles."),
        click.option("--cam-class", default="1", show_default=True, callback=_class_index,
                     help="Class (index) whose CAM is stitched into the slide heatmap."),
        click.option("--positive-class", type=click.IntRange(min=0), default=1, show_default=True,
                     help="Class whose probability gives the slide score."),
        click.option("--aggregation", type=click.Choice(["max", "topk"]), default="max", show_default=True,
                     help="Slide score: the largest tile probability, or the mean of the --top-k largest."),
        click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True, help="k of --aggregation topk."),
        click.option("--backend", type=click.Choice(["auto", "openslide", "tifffile"]), default="auto",
                     show_default=True, help="Slide reader (auto: OpenSlide when it reads the file)."),
        device, out, retrain, progress,
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def _config(slide: str, options: dict[str, Any]) -> SlideConfig:
    keys = ("tile_size", "magnification", "mpp", "level", "downsample", "tissue_threshold", "thumbnail_downsample",
            "batch_size", "workers", "cam_class", "positive_class", "aggregation", "top_k", "device", "backend",
            "progress")
    return SlideConfig(slide=slide, **{k: options[k] for k in keys})


@click.group("slide")
def slide() -> None:
    """Whole slides (any format OpenSlide reads; tifffile for plain TIFFs): tile, predict, attack."""


@slide.command("predict")
@_slide_options
def predict(slide: str, model: str, checkpoint: str | None, out: str | None, retrain: bool, **options: Any) -> None:
    """Run a model over the tissue tiles of SLIDE: per-tile CSV, slide score, class and CAM heatmaps."""
    run_dir, result = slide_predict_job(model, _config(slide, options), checkpoint=checkpoint, out=out,
                                        retrain=retrain, log=echo_err)
    s = result.summary()
    click.echo(f"slide score ({s['aggregation']} of the {s['positive_class']} probability over {s['tiles']} tissue "
               f"tiles): {s['slide_score']:.4f}")
    click.echo(f"tiles predicted per class: {s['tiles_predicted']}; {s['tiles_per_second']:.1f} tiles/s")
    click.echo(f"run directory: {run_dir}")


@slide.command("attack")
@_slide_options
@click.option("--attack", "attack_name", type=click.Choice(["ddn", "cw", "deepfool"]), default="ddn",
              show_default=True, help="Minimal-norm attack of the tiles.")
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True, help="The attack's budget.")
@click.option("--target-class", type=click.IntRange(min=0), default=0, show_default=True,
              help="Class the tiles are pushed to (0: hide the positive tiles of a 2-class model).")
@click.option("--max-tiles", type=click.IntRange(min=1), default=64, show_default=True,
              help="Attack at most this many tiles, the most positive first.")
@levels
@seed()
def attack(slide: str, model: str, checkpoint: str | None, out: str | None, retrain: bool, attack_name: str,
           steps: int, target_class: int, max_tiles: int, levels: int, seed: int, **options: Any) -> None:
    """Attack the tiles of SLIDE and report how the slide score and the stitched CAM heatmap change."""
    config = SlideAttackConfig(attack=attack_name, steps=steps, target_class=target_class, max_tiles=max_tiles,
                               levels=levels or None, seed=seed)
    run_dir, result = slide_attack_job(model, _config(slide, options), config, checkpoint=checkpoint, out=out,
                                       retrain=retrain, log=echo_err)
    s = result.summary()
    click.echo(f"{s['attack']} {s['steps']} on {s['attacked']} of {s['candidates']} candidate tiles: "
               f"{s['successes']} changed class"
               + (f", median L2 {s['median_l2_of_successes']:.4f}" if s["median_l2_of_successes"] else ""))
    click.echo(f"slide score: {s['slide_score_before']:.4f} -> {s['slide_score_after']:.4f}")
    if s["region_dice"] is not None:
        click.echo(f"positive region of the stitched CAM: Dice {s['region_dice']:.3f} with the clean one "
                   f"({s['region_pixels_before']} -> {s['region_pixels_after']} thumbnail pixels)")
    click.echo(f"run directory: {run_dir}")


COMMANDS = [slide]
