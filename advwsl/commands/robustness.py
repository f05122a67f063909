"""``advwsl evaluate-robustness`` and ``advwsl merge``: wiring of :mod:`advwsl.jobs.robustness`."""

from __future__ import annotations

import click

from ..evaluation.robustness import PRESETS
from ..jobs.robustness import RobustnessConfig, merge_job, parse_epsilons, robustness_job
from .options import (attack, batch_size, budget, channels_last, device, echo_err, epsilon, floats, json_option,
                      levels, model_and_data, out, precision, progress, retrain, seed)


@click.command("evaluate-robustness")
@model_and_data
@attack("all", "Minimal-norm attacks: a comma-separated list of ddn, cw, deepfool, or all (the three).")
@budget
@click.option("--preset", type=click.Choice(PRESETS), default="reference", show_default=True,
              help="Budgets of the attacks not given --budget: reference (section A V-7: DDN 1000, C&W 9x10000, "
                   "DeepFool 100; hours on a CPU) or quick (DDN 100, C&W 4x25, DeepFool 50; minutes).")
@epsilon("1.5", "L2 radii of the table's accuracy columns (1.5 on MNIST, 0.5 on CIFAR-10 in the reference).")
@click.option("--curve", default=None, metavar="START:STOP:NUM|LIST",
              help="Epsilon grid of the curves (default 0 to 2.5 x the largest --epsilon, 41 points).")
@click.option("--shard", default=None, metavar="K/N", help="Evaluate batches b with b % N == K; join with advwsl merge.")
@batch_size(128)
@levels
@click.option("--checks/--no-checks", default=True, show_default=True, help="Run the gradient-masking sanity checks.")
@precision
@channels_last
@seed()
@device
@out
@retrain
@progress
def evaluate_robustness(model: str, checkpoint: str | None, dataset: str | None, data_root: str | None,
                        dataset_kwargs: str | None, split: str, n_samples: int | None, attack_names: str,
                        budget: tuple[str, ...], preset: str, epsilon: str, curve: str | None, shard: str | None,
                        batch_size: int, levels: int, checks: bool, precision: str, channels_last: bool, seed: int,
                        device: str | None, out: str | None,
                        retrain: bool, progress: bool) -> None:
    """Robustness of a model as in Tables A V-5/A V-6 and Figure A V-4 (with gradient-masking checks)."""
    config = RobustnessConfig(
        model=model, checkpoint=checkpoint, dataset=dataset, data_root=data_root,
        dataset_kwargs=json_option(dataset_kwargs, "--dataset-kwargs"), split=split, n_samples=n_samples,
        attacks=attack_names, budget=budget, preset=preset, epsilon=floats(epsilon, "--epsilon"),
        curve=parse_epsilons(curve), shard=shard, batch_size=batch_size, levels=levels or None, checks=checks,
        seed=seed, device=device, out=out, progress=progress, retrain=retrain, precision=precision,
        channels_last=channels_last)
    run_dir, report = robustness_job(config, log=echo_err)
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
@out
def merge(run_dirs: tuple[str, ...], out: str | None) -> None:
    """Join the shards of one `advwsl evaluate-robustness` run into the single-process result."""
    run_dir, merged = merge_job(run_dirs, out)
    click.echo(merged.markdown())
    click.echo(f"run directory: {run_dir}")


COMMANDS = [evaluate_robustness, merge]
