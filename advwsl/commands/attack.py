"""``advwsl attack``: wiring of :func:`advwsl.jobs.attack.attack_job`."""

from __future__ import annotations

import click

from ..attacks import list_attacks
from ..jobs.attack import TABLE_EPSILONS, AttackConfig, attack_job
from ..jobs.report import format_attack_report
from ..models import CAM_RULES
from .options import (attack, batch_size, budget, channels_last, device, echo_err, epsilon, floats, json_option,
                      levels, model_and_data, out, precision, progress, retrain, seed)


@click.command("attack")
@model_and_data
@attack("ddn", f"Attacks: a comma-separated list of {', '.join(list_attacks())}, or all (ddn, cw, deepfool and "
               "their per-sample best, the 'All' row). cam-ddn moves the CAM and keeps the label.")
@budget
@click.option("--targeted", is_flag=True, help="Targeted attacks towards every other class (Tables A V-2..4).")
@epsilon(",".join(f"{e:g}" for e in TABLE_EPSILONS), "L2 radii of the report's accuracy columns.")
@batch_size(128)
@levels
@click.option("--attack-kwargs", default=None, metavar="JSON",
              help="Extra hyper-parameters of a single attack as JSON, e.g. '{\"loss\": \"margin\"}'.")
@click.option("--dice-threshold", type=float, default=0.5, show_default=True,
              help="cam-ddn: the CAM counts as moved when its Dice with the clean CAM falls below this.")
@click.option("--cam-rule", type=click.Choice(CAM_RULES), default="minmax", show_default=True,
              help="How the report binarizes CAMs: zero (M_c > 0, the reference's), argmax, or minmax (min-max "
                   "normalized, threshold 0.5).")
@precision
@channels_last
@device
@seed()
@out
@retrain
@progress
def attack_cmd(model: str, checkpoint: str | None, dataset: str | None, data_root: str | None,
               dataset_kwargs: str | None, split: str, n_samples: int | None, attack_names: str,
               budget: tuple[str, ...], targeted: bool, epsilon: str, batch_size: int, levels: int,
               attack_kwargs: str | None, dice_threshold: float, cam_rule: str, precision: str, channels_last: bool,
               device: str | None, seed: int,
               out: str | None, retrain: bool, progress: bool) -> None:
    """Minimal-L2 adversarial attacks with verified results (Table A V-1); on weakly supervised models also
    what they do to the class activation maps. `advwsl attack --model wildcat --budget 100` runs the demo."""
    config = AttackConfig(
        model=model, checkpoint=checkpoint, dataset=dataset, data_root=data_root,
        dataset_kwargs=json_option(dataset_kwargs, "--dataset-kwargs"), split=split, n_samples=n_samples,
        attacks=attack_names, budget=budget, targeted=targeted, epsilon=floats(epsilon, "--epsilon"),
        batch_size=batch_size, device=device, out=out, seed=seed, levels=levels or None,
        attack_kwargs=json_option(attack_kwargs, "--attack-kwargs"), dice_threshold=dice_threshold,
        cam_rule=cam_rule, precision=precision, channels_last=channels_last, progress=progress,
        retrain=retrain)
    run_dir, summary = attack_job(config, log=echo_err)
    click.echo(format_attack_report(summary))
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [attack_cmd]
