"""``advwsl attacks``: the registered attacks (what ``--attack`` accepts) with their budgets."""

from __future__ import annotations

import click


@click.command("attacks")
def attacks() -> None:
    """List the registered attacks: name, goal, reference and quick budgets, targeted form."""
    from ..attacks import ATTACK_PRESETS, get_attack_spec, list_attacks
    from ..io import markdown_table

    rows = []
    for name in list_attacks():
        s = get_attack_spec(name)
        kind = "minimal-norm" if s.minimal_norm else "fixed radius (run at each --epsilon)"
        rows.append([name, s.display, s.goal, kind, s.reference_budget, s.quick_budget, "yes" if s.targeted else "no",
                     s.description])
    click.echo(markdown_table(["name", "table", "goal", "kind", "reference budget", "quick budget", "targeted",
                               "what"], rows).rstrip())
    click.echo(f"\n--attack all runs {', '.join(ATTACK_PRESETS['all'])} (the reference's three) and their per-sample "
               f"best; --attack strong runs {', '.join(ATTACK_PRESETS['strong'])}: the minimal-norm ones give the "
               "All row, the fixed-radius ones robust accuracy at each radius, and the worst case over all.")


COMMANDS = [attacks]
