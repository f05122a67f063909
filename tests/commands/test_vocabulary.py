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
    return {opt: p for p in cmd.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts}


def _kind(param: click.Option) -> str:
    """The kind of value an option takes: a flag, a number, an integer, a choice (with its choices) or text
    (paths are text)."""
    if param.is_flag:
        return "flag"
    t = param.type
    if isinstance(t, click.Choice):
        return f"choice{sorted(t.choices)}"
    if isinstance(t, (click.types.IntParamType, click.IntRange)):
        return "integer" + (" (repeatable)" if param.multiple else "")
    if isinstance(t, (click.types.FloatParamType, click.FloatRange)):
        return "number"
    return "text" + (" (repeatable)" if param.multiple else "")


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
    """An option spelled the same in two commands takes the same kind of value there (no exceptions)."""
    seen: dict[str, tuple[str, str]] = {}
    for name, cmd in COMMANDS:
        for opt, param in _options(cmd).items():
            kind = _kind(param)
            if opt in seen:
                assert seen[opt][1] == kind, f"{opt}: {kind} in {name} but {seen[opt][1]} in {seen[opt][0]}"
            seen.setdefault(opt, (name, kind))


#: Options that several commands share and whose one meaning is written in the vocabulary
#: (commands.options.VOCABULARY, the README's table).
def test_a_shared_name_has_one_documented_meaning():
    """An option name that two commands use is a vocabulary entry (one meaning, written down once) — a
    name used for two things fails here."""
    users: dict[str, set[str]] = {}
    for name, cmd in COMMANDS:
        for opt in _options(cmd):
            users.setdefault(opt, set()).add(name.split()[0])  # a group's commands (slide predict/attack) are one
    documented = {entry.split("/")[0] for entry in VOCABULARY}
    for opt, commands in users.items():
        if len(commands) > 1 and opt not in ("--help", "-h"):
            assert opt in documented, f"{opt} is used by {sorted(commands)} but has no entry in VOCABULARY"


def test_renamed_spellings_are_refused_with_the_new_name():
    from click.testing import CliRunner

    runner = CliRunner()
    for args, new in ((["evaluate-robustness", "--preset", "quick"], "--budget"),
                      (["attack", "--targeted"], "--target"),
                      (["adv-train", "--epsilon", "2"], "--epsilon-max"),
                      (["slide", "attack", "x.svs", "--steps", "10"], "--budget"),
                      (["slide", "attack", "x.svs", "--target-class", "0"], "--target")):
        result = runner.invoke(main, args)
        assert result.exit_code != 0 and new in result.output, (args, result.output)


def test_vocabulary_is_used_and_documented():
    used = {opt for _, cmd in COMMANDS for opt in _options(cmd)}
    for entry in VOCABULARY:
        assert entry.split("/")[0] in used, f"{entry} is in the vocabulary but no command has it"
    readme = (__import__("pathlib").Path(__file__).parents[2] / "README.md").read_text()
    users: dict[str, set[str]] = {}
    for name, cmd in COMMANDS:
        for opt in _options(cmd):
            users.setdefault(opt, set()).add(name)
    for entry in VOCABULARY:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{entry}` |")), None)
        assert row is not None, f"README's option table lacks {entry}"
        listed = {c.strip() for c in row.rstrip(" |").split("|")[-1].split(",")}
        assert listed == users[entry.split("/")[0]], f"README: {entry} lists {sorted(listed)}, the commands that have it " \
                                                     f"are {sorted(users[entry.split('/')[0]])}"
