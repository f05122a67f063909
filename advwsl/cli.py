"""The ``advwsl`` command line: a click group; each command lives in ``advwsl.commands.<name>`` and only
wires options to library functions. The library itself never imports click."""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import AdvwslError

# Modules under advwsl.commands that each define a list ``COMMANDS`` of click commands.
COMMAND_MODULES = ("attack", "train", "data", "robustness")


class _Group(click.Group):
    """Turns project errors into a one-line message and exit status 2 instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AdvwslError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="advwsl")
def main() -> None:
    """Minimal-L2 adversarial attacks and defenses, and weakly supervised histology models."""


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"advwsl.commands.{_name}")
    except ModuleNotFoundError as _exc:  # a command module not present in this build
        if _exc.name != f"advwsl.commands.{_name}":
            raise
        continue
    for _cmd in getattr(_module, "COMMANDS", ()):
        main.add_command(_cmd)


if __name__ == "__main__":  # pragma: no cover
    main()
