"""``advwsl evaluate-robustness`` and ``advwsl merge``: wiring of :mod:`advwsl.jobs.robustness` (options from
:class:`RobustnessConfig` and :class:`MergeConfig`)."""

from __future__ import annotations

from typing import Any

import click

from ..config import MergeConfig, RobustnessConfig
from .options import config_from_cli, config_options, echo_err


@click.command("evaluate-robustness")
@config_options(RobustnessConfig)
def evaluate_robustness(**params: Any) -> None:
    """Robustness of a model as in Tables A V-5/A V-6 and Figure A V-4 (with gradient-masking checks)."""
    from ..jobs.robustness import robustness_job

    run_dir, report = robustness_job(config_from_cli(RobustnessConfig, params), log=echo_err)
    if report is None:  # a rank other than 0 under torchrun: rank 0 writes and prints
        return
    click.echo(report.markdown())
    k, n = report.config["shard"]
    if n > 1:
        click.echo(f"shard {k}/{n} written to {run_dir}; join the shards with: advwsl merge DIR... --out DIR")
    else:
        click.echo(f"run directory: {run_dir}")
    warning = report.warning()
    if warning:
        echo_err(f"WARNING: {warning}")


@click.command("merge")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
@config_options(MergeConfig)
def merge(run_dirs: tuple[str, ...], **params: Any) -> None:
    """Join the shards of one `advwsl evaluate-robustness` run into the single-process result."""
    from ..jobs.robustness import merge_job

    run_dir, merged = merge_job(config_from_cli(MergeConfig, params, run_dirs=run_dirs))
    click.echo(merged.markdown())
    click.echo(f"run directory: {run_dir}")


COMMANDS = [evaluate_robustness, merge]
