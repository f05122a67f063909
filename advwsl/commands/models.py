"""``advwsl models``: what ``--model`` accepts (built-in trained models, zoo architectures, checkpoints) and
the backbones of the weakly supervised models."""

from __future__ import annotations

import click



@click.command("models")
def models() -> None:
    """List the built-in trained models, the zoo architectures and the backbones."""
    from ..models import describe_backbone_families, list_backbones
    from ..pretrained import describe_sources

    click.echo(describe_sources())
    click.echo(f"\nBackbones of the weakly supervised models (--backbone): {', '.join(list_backbones())}")
    for family in describe_backbone_families():
        click.echo(f"  and {family}")


COMMANDS = [models]
