"""Run directories belong to advwsl only when advwsl made them: the record in ``INCOMPLETE`` (command, pid,
host, start time) written when the run directory is created is what a rerun trusts. A folder without it is
never removed, a folder of another command, of a live process or of an interrupted training run is never
touched, and two runs started on one ``--out`` cannot both have it."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import advwsl.runs as runs
from advwsl.errors import ConfigError
from advwsl.runs import INCOMPLETE, check_out, create_run_dir, incomplete, incomplete_record, resumable_run


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _interrupted_run(tmp_path: Path, command: str = "attack", name: str = "run") -> Path:
    """A run directory of ``command`` whose job failed (recorded by :func:`incomplete`), with a partial file."""
    run_dir = create_run_dir(command, tmp_path / name)
    with pytest.raises(RuntimeError), incomplete(run_dir, command, "rerun it"):
        (run_dir / "partial.csv").write_text("1,2\n")
        raise RuntimeError("disk full")
    return run_dir


# --------------------------------------------------------------------- folders advwsl did not make
def test_a_stray_incomplete_file_does_not_make_a_folder_removable(tmp_path):
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "thesis.tex").write_text("years of work")
    (precious / "sub" / "data.csv").write_text("1,2,3")
    (precious / INCOMPLETE).touch()
    before = _files(precious)
    for call in (lambda: check_out(precious), lambda: create_run_dir("attack", precious)):
        with pytest.raises(ConfigError, match="advwsl did not write") as info:
            call()
        assert "choose a new --out" in str(info.value)
    assert _files(precious) == before


def test_out_dot_with_a_stray_incomplete_keeps_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / INCOMPLETE).write_text("advwsl attack is running (pid 1)\n")  # an older advwsl's marker: no record
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="advwsl did not write"):
        create_run_dir("attack", ".")
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / INCOMPLETE).is_file()


def test_a_symlinked_out_never_removes_its_target(tmp_path):
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "keep.txt").write_text("x")
    (stray / INCOMPLETE).touch()
    (tmp_path / "link1").symlink_to(stray, target_is_directory=True)
    with pytest.raises(ConfigError, match="advwsl did not write"):
        create_run_dir("attack", tmp_path / "link1")
    run_dir = _interrupted_run(tmp_path)  # even a real interrupted run is not cleared through a link
    (tmp_path / "link2").symlink_to(run_dir, target_is_directory=True)
    before = _files(run_dir)
    with pytest.raises(ConfigError, match="symbolic link"):
        create_run_dir("attack", tmp_path / "link2")
    assert _files(stray) == {"keep.txt": b"x", INCOMPLETE: b""} and _files(run_dir) == before


def test_a_broken_symlink_out_is_refused_cleanly(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="broken symbolic link"):
        create_run_dir("attack", tmp_path / "dangling")


def test_a_finished_run_and_a_foreign_folder_are_refused(tmp_path):
    finished = create_run_dir("attack", tmp_path / "done")
    runs.mark_complete(finished)
    for folder in (finished, tmp_path):
        with pytest.raises(ConfigError, match="already exists and is not empty"):
            create_run_dir("attack", folder)


# --------------------------------------------------------------------------- runs advwsl made
def test_a_rerun_of_an_ended_run_of_the_same_command_starts_it_again(tmp_path):
    run_dir = _interrupted_run(tmp_path)
    record = incomplete_record(run_dir)
    assert record["command"] == "attack" and record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert record["ended"] == "failed" and "disk full" in (run_dir / INCOMPLETE).read_text()
    assert check_out(run_dir) == run_dir
    again = create_run_dir("attack", run_dir)
    assert again == run_dir and not (run_dir / "partial.csv").exists()  # the partial files of the run are gone
    assert {p.name for p in run_dir.iterdir()} == {INCOMPLETE, "config.json", "versions.json"}
    assert not incomplete_record(run_dir).get("ended")


def test_a_run_of_another_command_is_not_touched(tmp_path):
    run_dir = _interrupted_run(tmp_path, "evaluate-robustness")
    before = _files(run_dir)
    with pytest.raises(ConfigError, match="interrupted `advwsl evaluate-robustness` run") as info:
        create_run_dir("attack", run_dir)
    assert "choose a new --out" in str(info.value)
    assert _files(run_dir) == before


def test_an_interrupted_training_run_is_never_wiped(tmp_path):
    run_dir = create_run_dir("train", tmp_path / "train")
    with pytest.raises(KeyboardInterrupt), resumable_run(run_dir, "train"):
        (run_dir / "fold_0" / "state").mkdir(parents=True)
        (run_dir / "fold_0" / "state" / "last.pt").write_bytes(b"epochs of training")
        raise KeyboardInterrupt
    before = _files(run_dir)
    for command in ("train", "attack"):
        with pytest.raises(ConfigError, match="continue it with `advwsl train --resume") as info:
            create_run_dir(command, run_dir)
        assert str(run_dir) in str(info.value)
    assert _files(run_dir) == before
    with resumable_run(run_dir, "train"):  # --resume is the way to continue it
        assert incomplete_record(run_dir)["pid"] == os.getpid()
    assert not (run_dir / INCOMPLETE).exists() and (run_dir / "fold_0" / "state" / "last.pt").is_file()


def test_a_run_dir_with_training_state_is_refused_even_without_a_resume_hint(tmp_path):
    run_dir = _interrupted_run(tmp_path, "train")
    (run_dir / "state").mkdir()
    with pytest.raises(ConfigError, match="--resume"):
        create_run_dir("train", run_dir)
    assert (run_dir / "state").is_dir() and (run_dir / "partial.csv").is_file()


def test_a_run_started_on_another_machine_is_left_alone(tmp_path):
    run_dir = create_run_dir("attack", tmp_path / "run")
    text = (run_dir / INCOMPLETE).read_text().replace(json.dumps(socket.gethostname()), '"node-17"')
    (run_dir / INCOMPLETE).write_text(text)
    with pytest.raises(ConfigError, match="node-17.*cannot tell"):
        create_run_dir("attack", run_dir)
    assert (run_dir / "config.json").is_file()


# ------------------------------------------------------------------------------- live processes
_HOLDER = textwrap.dedent("""
    import sys
    from advwsl.runs import create_run_dir
    create_run_dir("attack", sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
""")


def _holder(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(runs.__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_the_folder_of_a_live_run_is_refused_then_reused_once_it_died(tmp_path):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        (out / "first.csv").write_text("the first run's results")
        for call in (lambda: check_out(out), lambda: create_run_dir("attack", out)):
            with pytest.raises(ConfigError, match=f"pid {proc.pid}.*still running"):
                call()
        assert (out / "first.csv").is_file() and incomplete_record(out)["pid"] == proc.pid
    finally:
        proc.communicate("")  # the first run is killed without recording it: its pid is gone
    assert incomplete_record(out)["pid"] == proc.pid and not incomplete_record(out).get("ended")
    create_run_dir("attack", out)
    assert incomplete_record(out)["pid"] == os.getpid() and not (out / "first.csv").exists()


def test_resuming_a_run_that_another_process_holds_is_refused(tmp_path):
    out = tmp_path / "run"
    proc = _holder(out)
    try:
        with pytest.raises(ConfigError, match="still running"), resumable_run(out, "attack"):
            raise AssertionError("must not run")
    finally:
        proc.communicate("")


def _race(out: str, barrier, results) -> None:
    barrier.wait()
    try:
        path = create_run_dir("attack", out)
        (path / "result.csv").write_text(str(os.getpid()))
        results.put(("ok", os.getpid()))
    except ConfigError as exc:
        results.put(("refused", str(exc)))


def test_two_runs_started_together_on_one_out(tmp_path):
    context = multiprocessing.get_context("fork")
    for k, prepare in enumerate((lambda out: None, lambda out: _interrupted_run(tmp_path, name=out.name))):
        out = tmp_path / f"race{k}"
        prepare(out)
        barrier, results = context.Barrier(4), context.Queue()
        procs = [context.Process(target=_race, args=(str(out), barrier, results)) for _ in range(4)]
        for p in procs:
            p.start()
        outcome = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(60)
        winners = [v for kind, v in outcome if kind == "ok"]
        assert len(winners) == 1, outcome
        assert all("still running" in v or "just claimed" in v or "not empty" in v
                   for kind, v in outcome if kind == "refused"), outcome
        assert (out / "result.csv").read_text() == str(winners[0])
        assert incomplete_record(out)["pid"] == winners[0]
        assert {p.name for p in out.iterdir()} == {INCOMPLETE, "config.json", "versions.json", "result.csv"}


def test_a_run_that_finished_between_the_check_and_the_claim_is_not_marked(tmp_path, monkeypatch):
    """The first run finished just after the second checked the (then empty) folder: the second must not put
    its INCOMPLETE into the finished run (which a later command would then remove)."""
    out = tmp_path / "run"
    runs.mark_complete(create_run_dir("attack", out))
    before = _files(out)
    monkeypatch.setattr(runs, "_inspect", lambda path, command, resuming=False, take_over=False: None)  # the check saw an empty folder
    with pytest.raises(ConfigError, match="not empty"):
        create_run_dir("attack", out)
    assert _files(out) == before


def test_the_marker_names_the_run_for_a_reader(tmp_path):
    run_dir = create_run_dir("attack", tmp_path / "run")
    text = (run_dir / INCOMPLETE).read_text()
    assert text.startswith(f"advwsl attack is running (pid {os.getpid()}")
    record = incomplete_record(run_dir)
    assert set(record) >= {"command", "pid", "host", "started"}
