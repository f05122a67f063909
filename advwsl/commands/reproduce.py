"""``advwsl reproduce``: wiring of :mod:`advwsl.reproduce` (options from :class:`ReproduceConfig`)."""

from __future__ import annotations

from typing import Any

import click

from ..config import ReproduceConfig
from ..errors import ConfigError
from .options import config_from_cli, config_options, echo_err


@click.command("reproduce")
@click.argument("entry_id", required=False, metavar="ID")
@config_options(ReproduceConfig)
def reproduce(entry_id: str | None, **params: Any) -> None:
    """Run a table or figure of the reference (e.g. A-V-1, 2.5, fig-2.8) and put our numbers beside its own."""
    from ..io import markdown_table, parse_set_pairs
    from ..reproduce import describe_entries, run_entry

    config = config_from_cli(ReproduceConfig, params, entry_id=entry_id)
    if config.show_list or (config.entry_id is None and config.resume is None):
        rows = describe_entries()
        columns = ["id", "what", "runs here", "data", "CPU time", "GPU time"]
        click.echo(markdown_table(columns, [[r[c] for c in columns] for r in rows]).rstrip())
        if config.entry_id is None and not config.show_list:
            raise ConfigError("give the ID of a table or figure (above), e.g. advwsl reproduce A-V-1 --quick")
        return
    run_dir, outcome = run_entry(config.entry_id, quick=config.quick, dataset=config.dataset,
                                 data_root=config.data_root, device=config.device, out=config.out,
                                 progress=config.progress, log=echo_err, workers=config.workers,
                                 changes=parse_set_pairs(config.set_pairs) if config.set_pairs else None,
                                 resume=config.resume, reuse=config.reuse, take_over=config.take_over)
    click.echo(outcome.markdown)
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [reproduce]
