"""``advwsl slide predict`` and ``advwsl slide attack``: wiring of :mod:`advwsl.jobs.slide` (options from
:class:`SlidePredictConfig` and :class:`SlideAttackConfig`)."""

from __future__ import annotations

from typing import Any

import click

from ..config import SlideAttackConfig, SlidePredictConfig
from .options import config_from_cli, config_options, echo_err

_SLIDE = click.argument("slide", type=click.Path(dir_okay=False, exists=True))


@click.group("slide")
def slide() -> None:
    """Whole slides (any format OpenSlide reads; tifffile for plain TIFFs): tile, predict, attack."""


@slide.command("predict")
@_SLIDE
@config_options(SlidePredictConfig)
def predict(slide: str, **params: Any) -> None:
    """Run a model over the tissue tiles of SLIDE: per-tile CSV, slide score, class and CAM heatmaps."""
    from ..jobs.slide import slide_predict_job

    run_dir, result = slide_predict_job(config_from_cli(SlidePredictConfig, params, slide=slide), log=echo_err)
    s = result.summary()
    click.echo(f"slide score ({s['aggregation']} of the {s['positive_class']} probability over {s['tiles']} tissue "
               f"tiles): {s['slide_score']:.4f}")
    click.echo(f"tiles predicted per class: {s['tiles_predicted']}; {s['tiles_per_second']:.1f} tiles/s")
    click.echo(f"run directory: {run_dir}")


@slide.command("attack")
@_SLIDE
@config_options(SlideAttackConfig)
def attack(slide: str, **params: Any) -> None:
    """Attack the tiles of SLIDE and report how the slide score and the stitched CAM heatmap change."""
    from ..jobs.slide import slide_attack_job

    run_dir, result = slide_attack_job(config_from_cli(SlideAttackConfig, params, slide=slide), log=echo_err)
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
