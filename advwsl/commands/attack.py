"""``advwsl attack``: run DDN, C&W, DeepFool (or any registered attack) on a model and a dataset, print
the Table A V-1 rows and write a run directory. Wiring only: the work is :func:`advwsl.jobs.attack.attack_job`,
and for weakly supervised models (with CAMs) :func:`advwsl.jobs.wsl_attack.wsl_attack_job`, which adds what
the attack does to the class activation maps (``--goal cam`` attacks the CAM itself)."""

from __future__ import annotations


import click

from ..errors import ConfigError
from . import json_option


@click.command("attack")
@click.option("--attack", "attack_names", default="ddn", show_default=True,
              help="ddn, cw, deepfool, all (the three and the 'All' row), any registered attack name, or a "
                   "comma-separated list.")
@click.option("--budget", type=int, default=None,
              help="Gradient steps: DDN/DeepFool steps, C&W 4 x budget/4. Default: the reference's settings "
                   "(DDN 100, C&W 9 x 10 000, DeepFool 50).")
@click.option("--targeted", is_flag=True, help="Targeted attacks towards every other class (Tables A V-2..4).")
@click.option("--model", default="digits-cnn", show_default=True,
              help="Model: a built-in name (digits-cnn: trained on first use and cached; a weakly supervised zoo "
                   "name such as wildcat, cam, max, lse, deepmil, deepmil-multi: the synthetic demo, trained on "
                   "first use and cached), a zoo architecture with --checkpoint, or a checkpoint path "
                   "(<stem>.safetensors + <stem>.json).")
@click.option("--checkpoint", default=None, help="Checkpoint to load into --model's architecture.")
@click.option("--dataset", default=None, help="digits (scikit-learn, offline) or a dataset name of advwsl.data. "
              "Default: digits, or for a weakly supervised model the built-in synthetic histology test split.")
@click.option("--data-root", default=None, help="Folder of the dataset on disk.")
@click.option("--split", default="test", show_default=True, help="Dataset split to attack.")
@click.option("--n-samples", type=int, default=None, help="Attack the first N samples (default: all).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available).")
@click.option("--out", default=None, help="Run directory (default runs/attack-<timestamp>; never overwritten).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--levels", type=int, default=256, show_default=True, help="Quantization levels of the result.")
@click.option("--no-quantize", is_flag=True, help="Keep float adversarials (no quantization).")
@click.option("--attack-kwargs", default=None, help="Extra hyper-parameters as JSON, e.g. '{\"loss\": \"margin\"}'.")
@click.option("--goal", type=click.Choice(["label", "cam"]), default="label", show_default=True,
              help="label: change the predicted label. cam: move the class activation map (its Dice with the clean "
                   "CAM below --dice-threshold) while the label stays (CAM-DDN; weakly supervised models).")
@click.option("--dice-threshold", type=float, default=0.5, show_default=True,
              help="--goal cam: the CAM counts as moved when its Dice with the clean CAM falls below this.")
@click.option("--cam-threshold", type=float, default=0.5, show_default=True,
              help="CAMs are min-max normalized per image and binarized at this value.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def attack(attack_names: str, budget: int | None, targeted: bool, model: str, checkpoint: str | None,
           dataset: str | None, data_root: str | None, split: str, n_samples: int | None, batch_size: int,
           device: str | None, out: str | None, seed: int, levels: int, no_quantize: bool,
           attack_kwargs: str | None, goal: str, dice_threshold: float, cam_threshold: float,
           no_progress: bool) -> None:
    """Minimal-L2 adversarial attacks with verified results (Table A V-1); on weakly supervised models also
    what they do to the class activation maps. `advwsl attack --model wildcat` runs the synthetic demo."""
    from ..jobs.attack import AttackJobConfig, attack_job, check_levels, expand_attacks
    from ..jobs.wsl_attack import format_report, is_wsl_request, wsl_attack_job

    extra = json_option(attack_kwargs, "--attack-kwargs")
    names = expand_attacks(attack_names)
    wsl = is_wsl_request(model, checkpoint)
    if goal == "cam" and (names != ("ddn",) or targeted):
        raise ConfigError("--goal cam runs the CAM attack (CAM-DDN) alone; drop --attack and --targeted")
    if goal == "cam" or (wsl and len(names) == 1 and not targeted):
        run_dir, summary = wsl_attack_job(
            model=model, checkpoint=checkpoint, dataset=dataset, data_root=data_root, split=split,
            n_samples=n_samples, goal=goal, attack=names[0], budget=budget, batch_size=batch_size, device=device,
            out=out, seed=seed, levels=None if no_quantize else check_levels(levels), dice_threshold=dice_threshold,
            cam_threshold=cam_threshold, progress=not no_progress, attack_kwargs=extra,
            log=lambda message: click.echo(message, err=True))
        click.echo(format_report(summary))
        click.echo(f"\nrun directory: {run_dir}")
        return
    if wsl and checkpoint is None:
        from ..demo import demo_model
        from ..models.zoo import list_models

        if model in list_models("wsl"):  # several or targeted attacks on the demo: its cached checkpoint
            model = demo_model(model, progress=not no_progress,
                               log=lambda message: click.echo(message, err=True)).demo_info["checkpoint"]
        dataset = dataset or "synthetic"
    config = AttackJobConfig(model=model, checkpoint=checkpoint, dataset=dataset or "digits", data_root=data_root,
                             split=split, n_samples=n_samples, attacks=names, budget=budget,
                             targeted=targeted, batch_size=batch_size, device=device, out=out, seed=seed,
                             levels=None if no_quantize else check_levels(levels), progress=not no_progress,
                             extra_kwargs=extra)
    run_dir = attack_job(config)
    click.echo((run_dir / "table.md").read_text().rstrip())
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [attack]
