"""``advwsl reproduce``: wiring of :mod:`advwsl.reproduce`."""

from __future__ import annotations

import click

from ..errors import ConfigError
from ..io import markdown_table, parse_set_pairs
from ..reproduce import describe_entries, run_entry
from .options import data_root, dataset, device, echo_err, out, progress


@click.command("reproduce")
@click.argument("entry_id", required=False, metavar="ID")
@click.option("--list", "show_list", is_flag=True, help="List every table and figure, what it needs and whether it "
                                                        "runs here.")
@click.option("--quick", is_flag=True, help="A minutes-long smoke version of the same pipeline (marked as such).")
@click.option("--set", "set_pairs", multiple=True, metavar="KEY=JSON",
              help="Change a setting of the run (dotted path into the entry's settings: n_samples=500, "
                   "defense.epochs=3, rows.2.n_samples=40); repeatable. The table says what was changed.")
@dataset(None, "Dataset of an appendix V entry: mnist-5k (default, offline), mnist or cifar10 (with --data-root).")
@data_root
@device
@out
@progress
def reproduce(entry_id: str | None, show_list: bool, quick: bool, set_pairs: tuple[str, ...], dataset: str | None, data_root: str | None,
              device: str | None, out: str | None, progress: bool) -> None:
    """Run a table or figure of the reference (e.g. A-V-1, 2.5, fig-2.8) and put our numbers beside its own."""
    if show_list or entry_id is None:
        rows = describe_entries()
        columns = ["id", "what", "runs here", "data", "CPU time", "GPU time"]
        click.echo(markdown_table(columns, [[r[c] for c in columns] for r in rows]).rstrip())
        if entry_id is None and not show_list:
            raise ConfigError("give the ID of a table or figure (above), e.g. advwsl reproduce A-V-1 --quick")
        return
    run_dir, outcome = run_entry(entry_id, quick=quick, dataset=dataset, data_root=data_root, device=device,
                                 out=out, progress=progress, log=echo_err,
                                 changes=parse_set_pairs(set_pairs) if set_pairs else None)
    click.echo(outcome.markdown)
    click.echo(f"\nrun directory: {run_dir}")


COMMANDS = [reproduce]
