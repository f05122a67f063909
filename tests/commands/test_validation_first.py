"""Nothing is written before validation, on every command: for every option that has a checked range or
set of choices (read from the configs, so a new option is covered without a new test), a bad value is
refused with exit status 2 and a one-line error, and neither the ``--out`` folder nor the data root
changes."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.config import (AdvTrainConfig, AttackConfig, EvaluateConfig, ReproduceConfig, RobustnessConfig,
                           SlideAttackConfig, SlidePredictConfig, TrainConfig, TrainJobConfig, config_fields)

#: Each command, the arguments it needs besides the option under test, and the configs its options come from.
COMMANDS = {
    "attack": ([], (AttackConfig,)),
    "evaluate-robustness": ([], (RobustnessConfig,)),
    "train": ([], (TrainConfig, TrainJobConfig)),
    "adv-train": (["--epsilon-max", "1"], (AdvTrainConfig,)),
    "evaluate": (["--checkpoint", "{ckpt}"], (EvaluateConfig,)),
    "slide predict": (["{slide}"], (SlidePredictConfig,)),
    "slide attack": (["{slide}"], (SlideAttackConfig,)),
    "reproduce": (["A-V-1"], (ReproduceConfig,)),
}


def _bad_values(cls: type) -> list[tuple[str, str]]:
    """(option, bad value) for every option of ``cls`` with a range, choices or a numeric type."""
    out = []
    for f, hint, opt in config_fields(cls):
        if opt.flag == "" or not opt.help:
            continue
        flag = opt.flag or f"--{f.name.replace('_', '-')}"
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        base = args[0] if typing.get_origin(hint) is not typing.Literal else hint
        if opt.low is not None:
            out.append((flag, str(opt.low if opt.low_open else opt.low - 1)))
        elif opt.high is not None:
            out.append((flag, str(opt.high + 1)))
        elif typing.get_origin(base) is typing.Literal:
            out.append((flag, "no-such-choice"))
        elif base in (int, float):
            out.append((flag, "not-a-number"))
    return out


CASES = [(name, flag, value) for name, (_, classes) in COMMANDS.items() for cls in classes
         for flag, value in _bad_values(cls)]


@pytest.mark.parametrize("command, flag, value", CASES, ids=[f"{c} {f}={v}" for c, f, v in CASES])
def test_a_bad_value_is_refused_before_anything_is_written(command, flag, value, tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "keep.txt").write_text("user data")
    slide = tmp_path / "slide.svs"
    slide.write_bytes(b"not read before the options are checked")
    ckpt = tmp_path / "model.safetensors"
    extra, _ = COMMANDS[command]
    args = [*command.split(), *(a.format(slide=slide, ckpt=ckpt) for a in extra), flag, value]
    if command not in ("slide predict", "slide attack", "evaluate"):
        args += ["--data-root", str(data_root)]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output
    assert not out.exists(), f"{command} {flag} {value}: --out was created before the value was refused"
    assert sorted(p.name for p in data_root.iterdir()) == ["keep.txt"]


def test_the_walk_covers_every_command_with_generated_options():
    assert len(CASES) > 40 and {c for c, _, _ in CASES} | {c for c, _ in SEMANTIC} == set(COMMANDS)


#: Values only the registries or several options together can refuse (names, budgets, grids, --set paths).
SEMANTIC = [
    ("attack", ["--attack", "no-such-attack"]), ("attack", ["--budget", "ddn=x"]),
    ("attack", ["--attack-kwargs", '{"alpha_init": Infinity}']), ("attack", ["--attack-kwargs", '{"stepz": 1}']),
    ("attack", ["--attack", "deepfool", "--target", "all"]), ("attack", ["--epsilon", "0.5,nan"]),
    ("evaluate-robustness", ["--curve", "0:1:100000000"]), ("evaluate-robustness", ["--curve", "1,0.5"]),
    ("evaluate-robustness", ["--curve", ""]), ("evaluate-robustness", ["--shard", "5/3"]),
    ("evaluate-robustness", ["--attack", "pgd"]),
    ("train", ["--set", "epoch=3"]), ("train", ["--folds", "0,0"]), ("train", ["--set", "lr=\"fast\""]),
    ("adv-train", ["--epsilon-max", "1", "--clean-epochs", "5", "--epochs", "1"]),
    ("adv-train", ["--epsilon-max", "1", "--attack", "cam-ddn"]),
    ("reproduce", ["A-V-1", "--set", "n_samples=-3"]), ("reproduce", ["A-V-1", "--set", "rows=5"]),
    ("reproduce", ["A-V-1", "--set", "rows.0.n_sample=1"]), ("reproduce", ["A-V-1", "--set", "n_samples=\"abc\""]),
    ("reproduce", ["A-V-1", "--dataset", "no-such-dataset"]),
]


@pytest.mark.parametrize("command, extra", SEMANTIC, ids=[" ".join([c, *e]) for c, e in SEMANTIC])
def test_a_bad_combination_is_refused_before_anything_is_written(command, extra, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [*command.split(), *extra, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not out.exists()
