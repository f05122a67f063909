"""The ``advwsl`` command line: a click group; each command lives in ``advwsl.commands.<name>`` and only
parses options, calls one job of :mod:`advwsl.jobs` and prints. The library itself never imports click.

Project errors (bad input, missing data, corrupt checkpoints) print one line and exit with status 2;
an interrupt says where the partial run is and how to continue, and exits with status 130. SIGTERM (what
``kill`` and a batch system's time limit send) is an interrupt too, so the run directory records it."""

from __future__ import annotations

import signal
import sys

import click

from . import __version__
from .commands import adv_train, attack, attacks, data, models, reproduce, robustness, slide, train
from .errors import AdvwslError
from .runs import RunInterrupted

COMMAND_MODULES = (attack, robustness, adv_train, train, data, models, attacks, slide, reproduce)


class _Group(click.Group):
    """Turns project errors into a one-line message and exit status 2 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        previous = _interrupt_on_sigterm()
        try:
            return super().invoke(ctx)
        except AdvwslError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except RunInterrupted as exc:
            click.echo(f"\nInterrupted. The partial run is in {exc.run_dir} (marked by its file INCOMPLETE); "
                       f"{exc.hint}.", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("\nInterrupted before a run directory was created (a built-in model interrupted while it "
                       "trains on first use resumes where it stopped on the next call).", err=True)
            sys.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _interrupt_on_sigterm() -> object | None:
    """Make SIGTERM raise KeyboardInterrupt (as Ctrl-C does) while a command runs; the previous handler, or
    None when signals cannot be set here (not the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, _terminated)
    except ValueError:
        return None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="advwsl")
def main() -> None:
    """Minimal-L2 adversarial attacks and defenses, and weakly supervised histology models."""


for _module in COMMAND_MODULES:
    for _cmd in _module.COMMANDS:
        main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    main()
