"""``advwsl reproduce --resume``: a run stopped by SIGTERM (a batch system's time limit) records how to
continue, is never wiped by a rerun, and continues from the attack chunks it had finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from advwsl.attacks.chunks import ChunkStore
from advwsl.cli import main
from advwsl.errors import ConfigError
from advwsl.reproduce import Entry, register_entry, run_entry
from advwsl.reproduce.registry import _ENTRIES

SETTINGS = {"dataset": "mnist-5k", "n_samples": 20, "batch_size": 2,
            "rows": [{"attack": "cw", "budget": "1x100"}, {"attack": "ddn", "budget": "1000"}],
            "recipe": {"epochs": 1, "train_fraction": 0.1}}
REGISTER = f"""
import json, sys
from advwsl.reproduce import Entry, get_entry, register_entry
from advwsl.reproduce.appendix_v import ATTACK_TABLE
register_entry(Entry(id="test-resume", title="tiny attack table", section="test", data="mnist-5k",
                     availability="real", time_cpu="-", time_gpu="-", experiment=ATTACK_TABLE,
                     settings=json.loads({json.dumps(json.dumps(SETTINGS))}),
                     reference=get_entry("A-V-1").reference))
"""


@pytest.fixture
def tiny_entry():
    namespace: dict = {}
    exec(REGISTER, namespace)
    yield "test-resume"
    _ENTRIES._entries.pop("test-resume", None)


def test_sigterm_then_resume(tmp_path, tiny_entry):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    script = REGISTER + "from advwsl.cli import main\nmain(sys.argv[1:])\n"
    proc = subprocess.Popen([sys.executable, "-c", script, "reproduce", "test-resume", "--no-progress", "--out",
                             str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = ChunkStore(out / "chunks")
    deadline = time.monotonic() + 300
    while store.count() < 12 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()  # (stopped within the DDN row)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"advwsl reproduce --resume {out}" in err
    marker = (out / "INCOMPLETE").read_text()
    assert "interrupted" in marker and "--resume" in marker
    done = store.count()
    assert done >= 12

    # a plain rerun into the same folder is refused, and wipes nothing
    with pytest.raises(ConfigError, match="never wiped"):
        run_entry("test-resume", out=str(out), progress=False)
    assert store.count() == done
    # --resume takes no new settings
    res = CliRunner().invoke(main, ["reproduce", "--resume", str(out), "--set", "n_samples=4"])
    assert res.exit_code == 2 and "drop --set" in res.output

    saved = []
    real_save = ChunkStore.save

    def counting_save(self, key, arrays):
        saved.append(key)
        real_save(self, key, arrays)

    ChunkStore.save = counting_save
    try:
        run_dir, outcome = run_entry(None, resume=str(out), progress=False)
    finally:
        ChunkStore.save = real_save
    assert run_dir == out and not (out / "INCOMPLETE").exists() and store.count() == 20  # (kept for --reuse)
    assert len(saved) == 20 - done  # 10 chunks per row; the finished ones were read back
    table = (out / "table.csv").read_text()
    assert "DDN" in table and "C&W" in table
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["entry"] == "test-resume" and len(config["resumed"]) == 1

    # a new run reusing this one's chunks attacks nothing (same rows); one with a changed row attacks that row
    saved.clear()
    ChunkStore.save = counting_save
    try:
        same, _ = run_entry("test-resume", out=str(tmp_path / "same"), progress=False, reuse=(str(out),))
        changed, _ = run_entry("test-resume", out=str(tmp_path / "changed"), progress=False, reuse=(str(out),),
                               changes={"rows.0.budget": "1x50"})
    finally:
        ChunkStore.save = real_save
    assert len(saved) == 10  # the C&W row only (10 chunks of 2 images)
    assert _same_rows(same / "table.csv", out / "table.csv")
    assert _same_rows(changed / "table.csv", out / "table.csv", "DDN")


def _same_rows(a, b, attack=None):
    """Whether two table.csv files hold the same rows (of ``attack``), run-times left out."""
    frames = []
    for path in (a, b):
        frame = pd.read_csv(path)
        frame = frame[[c for c in frame.columns if not c.startswith("seconds")]]
        frames.append((frame[frame.attack == attack] if attack else frame).reset_index(drop=True))
    pd.testing.assert_frame_equal(*frames, check_exact=True)
    return True


def test_resume_refuses_what_it_cannot_continue(tmp_path, tiny_entry):
    with pytest.raises(ConfigError, match="no attack chunks"):
        run_entry("test-resume", out=str(tmp_path / "x"), reuse=(str(tmp_path),))
    res = CliRunner().invoke(main, ["reproduce", "--resume", str(tmp_path), "--reuse", str(tmp_path)])
    assert res.exit_code == 2 and "drop --reuse" in res.output
    with pytest.raises(ConfigError, match="not an advwsl run directory"):
        run_entry(None, resume=str(tmp_path))
    res = CliRunner().invoke(main, ["reproduce", "--resume", str(tmp_path), "--quick"])
    assert res.exit_code == 2 and "drop --quick" in res.output
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "table.md").write_text("# a finished run\n")
    with pytest.raises(ConfigError, match="a complete run"):
        run_entry(None, resume=str(tmp_path / "done"))


def test_figure_constants_read_back_their_chunks(tmp_path, monkeypatch):
    """Figure A V-2's C&W with constants saves each batch; a second run with the folder attacks nothing and
    returns the same constants, norms and successes."""
    import numpy as np

    import advwsl.reproduce.appendix_v_constants as constants
    from advwsl.models import create_model, save_model

    torch_model = create_model("cw-mnist", num_classes=10)
    save_model(torch_model, tmp_path / "model", metadata={"classes": [str(i) for i in range(10)]})
    kwargs = {"binary_search_steps": 2, "steps": 10, "stepsize": 0.01, "initial_const": 0.01}
    payload = (str(tmp_path / "model"), "mnist-5k", None, 6, kwargs, 3, 1, "cpu", tmp_path / "chunks")
    first = constants._constants_task(payload)
    assert ChunkStore(tmp_path / "chunks").count() == 2

    def never(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(constants, "carlini_wagner_l2_with_constants", never)
    again = constants._constants_task(payload)
    for a, b in zip(first[:3], again[:3]):
        np.testing.assert_array_equal(a, b)
    assert again[3] == pytest.approx(first[3])


def test_a_run_of_another_machine_is_taken_over_only_when_asked(tmp_path):
    """A run whose process died without a word on another node (a crash, a lost node) cannot be checked from
    here: --resume refuses it and says how to take it over; --take-over continues it, its chunks kept."""
    from advwsl.config import AttackTableSettings
    from advwsl.reproduce import Experiment, Outcome
    from advwsl.runs import INCOMPLETE, RECORD_PREFIX, create_run_dir

    ran = []
    experiment = Experiment("trivial", lambda ctx: ran.append(ctx.chunks) or Outcome("# done"), AttackTableSettings)
    register_entry(Entry(id="test-take-over", title="t", section="test", data="-", availability="real",
                         time_cpu="-", time_gpu="-", experiment=experiment,
                         settings={"dataset": "mnist-5k", "rows": [{"attack": "ddn", "budget": "10"}]}))
    try:
        first, _ = run_entry("test-take-over", out=str(tmp_path / "done"), progress=False)
        out = tmp_path / "run"
        create_run_dir("reproduce-test-take-over", out, config=json.loads((first / "config.json").read_text())["config"])
        record = {"command": "reproduce-test-take-over", "pid": 12345, "host": "another-node",
                  "started": "2026-01-01T00:00:00"}
        (out / INCOMPLETE).write_text(f"advwsl reproduce is running\n\n{RECORD_PREFIX}{json.dumps(record)}\n")
        (out / "chunks").mkdir()
        (out / "chunks" / "x.npz").write_bytes(b"")
        with pytest.raises(ConfigError, match="--take-over"):
            run_entry(None, resume=str(out), progress=False)
        res = CliRunner().invoke(main, ["reproduce", "test-take-over", "--take-over"])
        assert res.exit_code == 2 and "--resume" in res.output
        run_dir, outcome = run_entry(None, resume=str(out), progress=False, take_over=True)
    finally:
        _ENTRIES._entries.pop("test-take-over", None)
    assert run_dir == out and (out / "chunks" / "x.npz").exists() and not (out / INCOMPLETE).exists()
    assert ran[-1] == out / "chunks"


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_sigterm_stops_the_worker_processes_too(tmp_path, tiny_entry):
    """With --workers, SIGTERM to the command stops its worker processes with it (a pool would otherwise
    finish every row first) and the run can be continued."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    script = REGISTER + "from advwsl.cli import main\nmain(sys.argv[1:])\n"
    proc = subprocess.Popen([sys.executable, "-c", script, "reproduce", "test-resume", "--no-progress", "--workers",
                             "2", "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    store = ChunkStore(out / "chunks")
    deadline = time.monotonic() + 300
    while (store.count() < 2 or len(_children(proc.pid)) < 2) and proc.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert proc.poll() is None and len(workers) >= 2, proc.communicate()
    at_kill, tic = store.count(), time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    # stopped with the run: not after the ~18 chunks left (a pool that finished its rows first would save them)
    assert time.monotonic() - tic < 10 and store.count() <= at_kill + 2, (time.monotonic() - tic, store.count())
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{p}").exists() for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{p}").exists() for p in workers)
    assert "--resume" in (out / "INCOMPLETE").read_text()
