"""``advwsl attack``: wiring of :func:`advwsl.jobs.attack.attack_job` (options from :class:`AttackConfig`)."""

from __future__ import annotations

from typing import Any

import click

from ..config import AttackConfig
from .options import config_from_cli, config_options, echo_err


@click.command("attack")
@config_options(AttackConfig)
def attack_cmd(**params: Any) -> None:
    """Minimal-L2 adversarial attacks with verified results (Table A V-1); on weakly supervised models also
    what they do to the class activation maps. `advwsl attack --model wildcat --budget 100` runs the demo."""
    from ..jobs.attack import attack_job
    from ..jobs.report import format_attack_report

    run_dir, summary = attack_job(config_from_cli(AttackConfig, params), log=echo_err)
    click.echo(format_attack_report(summary))
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [attack_cmd]
