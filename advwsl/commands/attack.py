"""``advwsl attack``: run DDN, C&W, DeepFool (or any registered attack) on a model and a dataset, print
the Table A V-1 rows and write a run directory. Wiring only: the work is :func:`advwsl.jobs.attack.attack_job`."""

from __future__ import annotations

import json

import click

from ..errors import ConfigError


@click.command("attack")
@click.option("--attack", "attack_names", default="ddn", show_default=True,
              help="ddn, cw, deepfool, all (the three and the 'All' row), any registered attack name, or a "
                   "comma-separated list.")
@click.option("--budget", type=int, default=None,
              help="Gradient steps: DDN/DeepFool steps, C&W 4 x budget/4. Default: the reference's settings "
                   "(DDN 100, C&W 9 x 10 000, DeepFool 50).")
@click.option("--targeted", is_flag=True, help="Targeted attacks towards every other class (Tables A V-2..4).")
@click.option("--model", default="digits-cnn", show_default=True,
              help="Model: a built-in name (digits-cnn: trained on first use and cached), a zoo architecture, "
                   "or a checkpoint path (<stem>.safetensors + <stem>.json).")
@click.option("--checkpoint", default=None, help="Checkpoint to load into --model's architecture.")
@click.option("--dataset", default="digits", show_default=True, help="digits (scikit-learn, offline) or a "
              "dataset name of advwsl.data.")
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
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def attack(attack_names: str, budget: int | None, targeted: bool, model: str, checkpoint: str | None,
           dataset: str, data_root: str | None, split: str, n_samples: int | None, batch_size: int,
           device: str | None, out: str | None, seed: int, levels: int, no_quantize: bool,
           attack_kwargs: str | None, no_progress: bool) -> None:
    """Minimal-L2 adversarial attacks with verified results (Table A V-1)."""
    from ..jobs.attack import AttackJobConfig, attack_job, check_levels, expand_attacks

    extra = {}
    if attack_kwargs:
        try:
            extra = json.loads(attack_kwargs)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--attack-kwargs must be a JSON object, got {attack_kwargs!r} ({exc})") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"--attack-kwargs must be a JSON object, got {attack_kwargs!r}")
    config = AttackJobConfig(model=model, checkpoint=checkpoint, dataset=dataset, data_root=data_root, split=split,
                             n_samples=n_samples, attacks=expand_attacks(attack_names), budget=budget,
                             targeted=targeted, batch_size=batch_size, device=device, out=out, seed=seed,
                             levels=None if no_quantize else check_levels(levels), progress=not no_progress,
                             extra_kwargs=extra)
    run_dir = attack_job(config)
    click.echo((run_dir / "table.md").read_text().rstrip())
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [attack]
