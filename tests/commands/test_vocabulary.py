"""One CLI vocabulary: every click command spells a shared concept the same way, with the same kind of
value, and explains every option; retired spellings are gone."""

from __future__ import annotations

import click
import pytest

from advwsl.cli import main
from advwsl.commands.options import VOCABULARY

#: Spellings the vocabulary replaced: each was a second name for a concept (or a name with two meanings).
RETIRED = {"--n", "--attacks", "--no-progress", "--no-quantize", "--cam-threshold", "--epsilons", "--goal",
           "--resume-dir"}


def _commands(group: click.Group = main, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _commands(cmd, f"{prefix}{name} ")
        else:
            out.append((f"{prefix}{name}", cmd))
    return out


COMMANDS = _commands()


def _options(cmd: click.Command) -> dict[str, click.Option]:
    return {opt: p for p in cmd.params if isinstance(p, click.Option) for opt in p.opts}


def test_every_command_is_walked():
    names = {name for name, _ in COMMANDS}
    assert {"attack", "evaluate-robustness", "merge", "adv-train", "train", "evaluate", "models", "data list",
            "data folds", "data camelyon16"} <= names


@pytest.mark.parametrize("name, cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_options_follow_the_vocabulary(name, cmd):
    opts = _options(cmd)
    for opt, param in opts.items():
        assert opt not in RETIRED, f"{name}: {opt} is a retired spelling"
        if param.name != "help":
            assert param.help, f"{name}: {opt} has no help text"
    if "--progress" in opts:
        assert opts["--progress"].secondary_opts == ["--no-progress"], name
    for opt in ("--n-samples", "--batch-size", "--levels"):
        if opt in opts:
            assert isinstance(opts[opt].type, click.types.IntRange), f"{name}: {opt} must be a bounded integer"
    if "--split" in opts:
        assert list(opts["--split"].type.choices) == ["train", "valid", "test"], name
    if "--seed" in opts:
        assert opts["--seed"].type is click.INT, name
    if "--budget" in opts:
        assert opts["--budget"].multiple, f"{name}: --budget is repeatable (N or ATTACK=N)"


def test_one_name_one_kind_of_value():
    """An option spelled the same in two commands takes the same kind of value there."""
    seen: dict[str, tuple[str, str]] = {}
    for name, cmd in COMMANDS:
        for opt, param in _options(cmd).items():
            kind = "flag" if param.is_flag else type(param.type).__name__
            if opt in seen and opt not in ("--attack", "--epsilon", "--model", "--dataset", "--magnification"):
                assert seen[opt][1] == kind, f"{opt}: {kind} in {name} but {seen[opt][1]} in {seen[opt][0]}"
            seen.setdefault(opt, (name, kind))


def test_vocabulary_is_used_and_documented():
    used = {opt for _, cmd in COMMANDS for opt in _options(cmd)}
    for entry in VOCABULARY:
        assert entry.split("/")[0] in used, f"{entry} is in the vocabulary but no command has it"
    readme = (__import__("pathlib").Path(__file__).parents[2] / "README.md").read_text()
    for entry in VOCABULARY:
        assert f"`{entry}`" in readme, f"README's command table lacks {entry}"
