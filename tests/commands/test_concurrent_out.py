"""Two ``advwsl attack`` processes started together on one ``--out``: one runs, the other is refused (exit
status 2, saying why) and touches nothing, and the first one's run is complete. A folder with a stray
``INCOMPLETE`` given as ``--out .`` is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import advwsl
from advwsl.cli import main

ATTACK = ["attack", "--budget", "2", "--n-samples", "4", "--no-progress", "--device", "cpu"]
ROOT = Path(advwsl.__file__).resolve().parents[1]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", "from advwsl.cli import main; main()", *ATTACK, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.mark.slow  # two processes that import torch and attack (about 30 s on 2 shared cores)
def test_two_attacks_on_one_out_one_runs_the_other_is_refused(digits_model, tmp_path):
    out = tmp_path / "run"
    procs = [_start(out), _start(out)]
    results = [(p.wait(timeout=300), p.stdout.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(text for code, text in results if code == 2)
    assert any(why in refused for why in ("still running", "just claimed", "not empty")), refused
    assert "Traceback" not in refused
    files = {p.name for p in out.iterdir()}
    assert "INCOMPLETE" not in files and {"summary.json", "config.json", "ddn.csv"} <= files


def test_out_dot_with_a_stray_incomplete_is_refused_and_left_alone(digits_model, tmp_path, monkeypatch):
    (tmp_path / "INCOMPLETE").write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    before = sorted(p.name for p in tmp_path.iterdir())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*ATTACK, "--out", "."])
    assert result.exit_code == 2 and "advwsl did not write" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before and (tmp_path / "notes.txt").read_text() == "mine"
