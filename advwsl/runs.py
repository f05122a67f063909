"""Run directories: ``runs/<command>-<timestamp>/`` with the resolved config, package versions and the git
SHA when available. Nothing already on disk is ever overwritten or removed unless advwsl made it.

A run directory is marked incomplete while its job runs: the file ``INCOMPLETE`` says what is happening
and, after a failure or an interrupt, what went wrong and how to continue. It also holds the run's
*record* (one line ``advwsl-run: {json}``: the command, the pid and host of the process, its start time
and, once the job has stopped, how it ended), written when advwsl creates the directory. The record is
what makes a folder advwsl's: ``INCOMPLETE`` is removed when the job finishes.

Reusing an ``--out`` folder (:func:`check_out`, :func:`create_run_dir`):

* absent or empty: created and claimed;
* holding a record of an ended (failed, interrupted or killed) run of the same command: its partial files
  are removed and the run starts again, unless ``keep_partial``;
* refused, with what to do, and nothing touched: any other non-empty folder; an ``INCOMPLETE`` without a
  record (advwsl did not write it); the run of another command; the run of a live process (same host and
  pid still running) or of a process on another host (whose life cannot be checked from here); an
  interrupted training run (``continue it with --resume DIR``); a symbolic link (nothing is removed
  through a link).

Two processes claiming one folder: the ``INCOMPLETE`` file is created exclusively (a hard link of a
complete file, which fails when the name exists), and a dead run's record is taken over by an atomic
rename that is checked to have moved that very record; the loser is refused and touches nothing.
:func:`resumable_run` claims a training run the same way on ``--resume``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import shutil
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import atomic_write_text, write_json
from .run_records import (INCOMPLETE, RECORD_PREFIX, _marker_text, _new_record, _parse_record, _read_marker,
                          _refuse_live, git_sha, incomplete_record, package_versions)

__all__ = ["INCOMPLETE", "RECORD_PREFIX", "CHUNKS", "RunInterrupted", "check_out", "create_run_dir", "run_directory", "incomplete",
           "incomplete_record", "resumable_run", "mark_complete", "git_sha", "package_versions"]

#: The folder of a run directory where its attacks save their finished chunks (:mod:`advwsl.attacks.chunks`):
#: kept when an interrupted run is continued (and, by ``advwsl reproduce``, for ``--reuse``).
CHUNKS = "chunks"


class RunInterrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` that stopped a job with a run directory: ``run_dir`` holds the partial run and
    ``hint`` says how to continue it (the CLI prints both)."""

    def __init__(self, run_dir: Path, hint: str) -> None:
        super().__init__(f"interrupted; the partial run is in {run_dir}: {hint}")
        self.run_dir = Path(run_dir)
        self.hint = hint


# ---------------------------------------------------------------------------- checking an --out folder
def _training_state(path: Path) -> bool:
    return (path / "state").is_dir() or any(p.is_dir() for p in path.glob("*/state"))


def _reusable(path: Path, command: str | None, resuming: bool = False, take_over: bool = False) -> str:
    """The ``INCOMPLETE`` text of the ended run of ``command`` that the non-empty folder ``path`` holds, which
    may be started again (``resuming``: continued, its files kept); otherwise a :class:`ConfigError` saying
    why not and what to do."""
    text = _read_marker(path)
    if text is None:
        raise ConfigError(f"output folder {path} already exists and is not empty; choose a new --out (runs are "
                          "never overwritten)")
    record = _parse_record(text)
    if record is None:
        raise ConfigError(f"output folder {path} holds a file {INCOMPLETE} that advwsl did not write (it names no "
                          "advwsl run), so nothing in it is removed; choose a new --out, or delete the folder "
                          "yourself if it is an old run you no longer need")
    _refuse_live(path, record, "if that run has stopped (a crashed job, a lost node), continue it from here with "
                               "--take-over" if resuming else "choose another --out (or, once sure that run has "
                               "stopped, delete the folder yourself)", take_over)
    mine = record["command"]
    resume = record.get("resume") or (_training_state(path) and f"continue it with `advwsl {mine} --resume {path}`")
    if resume and not (resuming and mine == command):
        raise ConfigError(f"{path} holds an interrupted `advwsl {mine}` run, which is never wiped: {resume} "
                          "(or choose a new --out)")
    if command is not None and mine != command:
        raise ConfigError(f"{path} holds an interrupted `advwsl {mine}` run; rerun `advwsl {mine}` with this --out "
                          f"to start it again, or choose a new --out for `advwsl {command}`")
    if path.is_symlink():
        raise ConfigError(f"--out {path} is a symbolic link to {path.resolve()}, which holds an interrupted run; "
                          f"nothing is removed through a link: pass {path.resolve()} itself to start that run "
                          "again, or choose a new --out")
    return text


def _inspect(path: Path, command: str | None, resuming: bool = False, take_over: bool = False) -> str | None:
    """Check that ``path`` can become a run directory of ``command``: None when it is absent or empty, the
    ``INCOMPLETE`` text of a run that may be started again (see :func:`_reusable`), else a ConfigError."""
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"--out {path} is a broken symbolic link (to {os.readlink(path)}); give a folder path")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is an existing file; give a folder path (a new run directory)")
    try:
        previous = _reusable(path, command, resuming, take_over) if path.is_dir() and any(path.iterdir()) else None
    except OSError as exc:  # an unreadable folder
        raise ConfigError(f"cannot use --out {path} ({exc.strerror or exc}); choose a folder you can read and "
                          "write") from None
    parent = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConfigError(f"cannot create --out {path}: {parent} is a file, not a folder; give a path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create --out {path}: {parent} is not a writable folder; choose a path you can "
                          "write to")
    return previous


def check_out(out: str | Path | None, *, command: str | None = None, resuming: bool = False,
              take_over: bool = False) -> Path | None:
    """Check, before any work, that ``out`` can become a run directory (of ``command`` when given): absent,
    empty, or an ended run that may be started again (``resuming``: continued; see the module docstring), in
    a writable folder. Returns it as a path (None stays None); refusals are :class:`ConfigError` saying what
    to do."""
    if out is None:
        return None
    path = Path(out)
    _inspect(path, command, resuming, take_over)
    return path


# ------------------------------------------------------------------------------ claiming a directory
def _taken(path: Path) -> ConfigError:
    return ConfigError(f"another advwsl process just claimed {path} as its run directory; choose another --out")


def _link_marker(path: Path, text: str) -> bool:
    """Create ``path/INCOMPLETE`` holding ``text`` only if it does not exist (a hard link of a complete
    temporary file: readers never see it half-written). False when it exists."""
    tmp = path / f".{INCOMPLETE}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        tmp.write_text(text)
    except OSError as exc:
        raise ConfigError(f"cannot write in the run directory {path} ({exc.strerror or exc}); choose an --out you "
                          "can write to") from None
    try:
        os.link(tmp, path / INCOMPLETE)
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive creation
        try:
            fd = os.open(path / INCOMPLETE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _claim(path: Path, text: str, previous: str | None, *, expect_empty: bool) -> None:
    """Make ``text`` the ``INCOMPLETE`` of ``path``, atomically against other processes: ``previous`` (the
    marker seen when checking the folder) is moved aside first, and the move is checked to have taken that
    very marker. With ``expect_empty``, a folder that holds anything else afterwards (a run that finished in
    the meantime) is refused and left as it was."""
    if previous is not None:
        aside = path / f".{INCOMPLETE}.{os.getpid()}.{secrets.token_hex(4)}.old"
        try:
            os.rename(path / INCOMPLETE, aside)
        except FileNotFoundError:
            raise _taken(path) from None
        if aside.read_text(errors="replace") != previous:  # another process claimed it first: give it back
            with contextlib.suppress(OSError):
                os.link(aside, path / INCOMPLETE)
            aside.unlink(missing_ok=True)
            raise _taken(path)
        aside.unlink()
    if not _link_marker(path, text):
        raise _taken(path)
    if expect_empty and any(p.name != INCOMPLETE and not p.name.startswith(f".{INCOMPLETE}.") for p in
                            path.iterdir()):  # (the temporaries of other claimants do not count)
        (path / INCOMPLETE).unlink(missing_ok=True)
        raise ConfigError(f"output folder {path} already exists and is not empty (another run wrote it meanwhile); "
                          "choose a new --out (runs are never overwritten)")


def _clear(path: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove the partial files of an ended run from its directory ``path`` (not ``INCOMPLETE``, which this
    process holds now, nor the names in ``keep``); links are removed, never followed."""
    for entry in path.iterdir():
        if entry.name == INCOMPLETE or entry.name in keep or entry.name.startswith(f".{INCOMPLETE}."):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot remove {entry}, a partial file of the interrupted run in {path} "
                              f"({exc.strerror or exc}); remove it yourself or choose a new --out") from None


def create_run_dir(command: str, out: str | Path | None = None, *, root: str | Path = "runs",
                   config: dict[str, Any] | None = None, keep_partial: bool | tuple[str, ...] = False,
                   resume: str | None = None, take_over: bool = False) -> Path:
    """Create a fresh run directory, mark it incomplete (with the run's record) and write ``config.json``
    and ``versions.json``.

    ``out`` names the directory explicitly; it must be absent, empty, or hold an ended run of the same
    ``command`` (whose files are removed first unless ``keep_partial``): see the module docstring for what
    is refused. Otherwise the directory is ``<root>/<command>-<YYYYmmdd-HHMMSS>`` with a numeric suffix if
    that name is taken. ``keep_partial`` continues the ended run of ``command`` in ``out`` (its files kept, also
    when its record says it is never wiped; a tuple of names keeps those and ``config.json`` only). ``resume`` (how to continue the run, ``{run_dir}`` standing for
    the directory) goes into the record: a rerun with the same ``--out`` is then refused with it instead of
    wiping the partial files. ``take_over`` continues a run started on another machine, whose process cannot
    be checked from here, on the caller's word that it has stopped.
    """
    record = _new_record(command)
    keep = tuple(keep_partial) if not isinstance(keep_partial, bool) else ()

    def marker(path: Path) -> str:
        mine = {**record, "resume": resume.format(run_dir=path)} if resume else record
        return _marker_text(f"advwsl {command} is running (pid {record['pid']} on {record['host']}, since "
                            f"{record['started']})", mine)

    if out is not None:
        path = Path(out)
        previous = _inspect(path, command, resuming=bool(keep_partial), take_over=take_over)
        _mkdir(path, exist_ok=True)
        _claim(path, marker(path), previous, expect_empty=previous is None)
        if previous is not None and (keep or not keep_partial):
            _clear(path, keep=(*keep, "config.json", "versions.json") if keep else ())
    else:
        path = _fresh_dir(Path(root), command)
        _claim(path, marker(path), None, expect_empty=True)
    meta = {"command": command, "created": record["started"], "git_sha": git_sha(), "argv": sys.argv}
    content: dict[str, Any] = {"run": meta, "config": config or {}}
    continued = bool(keep_partial) and (path / "config.json").is_file()
    if continued:  # its first start stays the record; each continuation is listed with its package versions
        with contextlib.suppress(OSError, ValueError):
            first = json.loads((path / "config.json").read_text())
            content = {"run": first.get("run", meta), "config": config or {},
                       "resumed": [*first.get("resumed", []), {**meta, "versions": package_versions()}]}
    write_json(path / "config.json", content, overwrite=bool(keep_partial))
    if not (continued and (path / "versions.json").is_file()):
        write_json(path / "versions.json", package_versions(), overwrite=bool(keep_partial))
    return path


def _fresh_dir(root: Path, command: str) -> Path:
    """A new folder ``<root>/<command>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``, ... when taken)."""
    base = root / f"{command}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while True:
        try:
            _mkdir(path, exist_ok=False)
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")


def _mkdir(path: Path, *, exist_ok: bool) -> None:
    """``path.mkdir(parents=True)``; a folder that cannot be created (permissions, read-only or virtual file
    system, a file in the way) is a :class:`ConfigError` naming it."""
    try:
        path.mkdir(parents=True, exist_ok=exist_ok)
    except FileExistsError:
        if not exist_ok or not path.is_dir():
            raise
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {path} ({exc.strerror or exc}); choose an --out you "
                          "can write to") from None


# ------------------------------------------------------------------------------- the run's lifetime
def mark_complete(run_dir: str | Path) -> None:
    """Remove the incomplete marker: the run's files are final."""
    (Path(run_dir) / INCOMPLETE).unlink(missing_ok=True)


def _record_end(run_dir: Path, command: str, exc: BaseException, hint: str) -> None:
    """Rewrite ``INCOMPLETE`` with what went wrong, ``hint`` and the run's record marked ended (a marker
    without a record, which advwsl did not write, stays without one)."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    what = "interrupted" if interrupted else f"failed: {type(exc).__name__}: {exc}"
    record = incomplete_record(run_dir)
    if record is not None:
        record = {**record, "ended": "interrupted" if interrupted else "failed",
                  "ended_at": _dt.datetime.now().isoformat(timespec="seconds")}
    text = _marker_text(f"advwsl {command} {what}", record, [hint, "", "".join(traceback.format_exception(exc))])
    with contextlib.suppress(OSError):
        atomic_write_text(run_dir / INCOMPLETE, text, overwrite=True)


@contextlib.contextmanager
def incomplete(run_dir: str | Path, command: str, hint: str) -> Iterator[Path]:
    """Keep ``run_dir`` marked incomplete while the block runs and mark it complete when it ends. When the
    block raises, ``INCOMPLETE`` records what went wrong, ``hint`` (how to continue) and that the run ended;
    an interrupt is re-raised as :class:`RunInterrupted` carrying the directory and the hint."""
    run_dir = Path(run_dir)
    try:
        yield run_dir
    except BaseException as exc:
        _record_end(run_dir, command, exc, hint)
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
            raise RunInterrupted(run_dir, hint) from None
        raise
    mark_complete(run_dir)


@contextlib.contextmanager
def run_directory(command: str, out: str | Path | None = None, *, config: dict[str, Any] | None = None,
                  keep_partial: bool | tuple[str, ...] = False, resume: str | None = None,
                  hint: str | None = None, take_over: bool = False) -> Iterator[Path]:
    """Create a run directory (:func:`create_run_dir`) for the block; mark it complete when the block ends,
    or record in ``INCOMPLETE`` what went wrong and how to continue (``resume``, or ``hint`` when a rerun
    with the same ``--out`` continues the run, ``{run_dir}`` standing for the directory; default: rerun with
    this ``--out`` to start again) when it raises or is interrupted (see :func:`incomplete`)."""
    run_dir = create_run_dir(command, out, config=config, keep_partial=keep_partial, resume=resume,
                             take_over=take_over)
    hint = (resume or hint or "rerun the command with --out {run_dir} to start this run again").format(run_dir=run_dir)
    with incomplete(run_dir, command, hint):
        yield run_dir


def _hold(run_dir: Path, command: str, hint: str) -> None:
    """Claim the existing run directory ``run_dir`` for this process (see :func:`resumable_run`)."""
    text = _read_marker(run_dir)
    record = _parse_record(text) if text else None
    new = {**_new_record(command), "resume": hint}
    if record is not None and record["pid"] == new["pid"] and record.get("host") == new["host"] \
            and not record.get("ended"):  # created by this process a moment ago
        new["started"] = record.get("started", new["started"])
        atomic_write_text(run_dir / INCOMPLETE, _marker_text(f"advwsl {command} is running; if it stops, {hint}",
                                                             new), overwrite=True)
        return
    if record is not None:
        _refuse_live(run_dir, record, f"if it has stopped, delete {run_dir / INCOMPLETE} and resume again")
    _claim(run_dir, _marker_text(f"advwsl {command} is running; if it stops, {hint}", new), text,
           expect_empty=False)


@contextlib.contextmanager
def resumable_run(run_dir: Path | None, command: str, *, rank: int = 0, hint: str | None = None) -> Iterator[None]:
    """Mark the training run ``run_dir`` (created by :func:`create_run_dir`, or resumed) incomplete while the
    block runs, on rank 0 only: if it stops, the marker and the interrupt say how to continue it (``hint``,
    default: ``advwsl COMMAND --resume RUN_DIR``), and :func:`create_run_dir` never wipes it. A run directory
    that another live process holds is refused (:class:`ConfigError`); an ended one is taken over."""
    if rank != 0 or run_dir is None:
        yield
        return
    hint = hint or f"continue it with `advwsl {command} --resume {run_dir}`"
    _hold(Path(run_dir), command, hint)
    with incomplete(run_dir, command, hint):
        yield
