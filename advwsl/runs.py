"""Run directories: ``runs/<command>-<timestamp>/`` with the resolved config, package versions and the git
SHA when available. Nothing already on disk is ever overwritten.

A run directory is marked incomplete while its job runs: the file ``INCOMPLETE`` holds what is happening
and, after a failure or an interrupt, what went wrong and how to continue. It is removed when the job
finishes. A rerun with the same ``--out`` may reuse a directory that holds such a marker (its partial
files are removed first, except for training runs, which resume with ``--resume``); any other non-empty
folder is refused.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .io import atomic_write_text, write_json

__all__ = ["INCOMPLETE", "RunInterrupted", "check_out", "create_run_dir", "run_directory", "incomplete",
           "resumable_run", "mark_complete", "git_sha", "package_versions"]

#: Name of the marker file of a run directory whose job has not finished.
INCOMPLETE = "INCOMPLETE"


class RunInterrupted(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` that stopped a job with a run directory: ``run_dir`` holds the partial run and
    ``hint`` says how to continue it (the CLI prints both)."""

    def __init__(self, run_dir: Path, hint: str) -> None:
        super().__init__(f"interrupted; the partial run is in {run_dir}: {hint}")
        self.run_dir = Path(run_dir)
        self.hint = hint


def git_sha(cwd: str | Path | None = None) -> str | None:
    """The SHA of the checkout holding this package (or ``cwd``), or None outside a git checkout."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages results depend on."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("advwsl", "torch", "torchvision", "numpy", "foolbox", "timm", "pandas", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import torch

        versions["cuda"] = str(torch.version.cuda) if torch.cuda.is_available() else "unavailable"
    except ImportError:
        pass
    return versions


def check_out(out: str | Path | None) -> Path | None:
    """Check, before any work, that ``out`` can become a run directory: absent, empty, or an incomplete run
    (see the module docstring) inside a writable folder. Returns it as a path (None stays None)."""
    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is an existing file; give a folder path (a new run directory)")
    if path.is_dir() and any(path.iterdir()) and not (path / INCOMPLETE).is_file():
        raise ConfigError(f"output folder {path} already exists and is not empty; choose a new --out "
                          "(runs are never overwritten)")
    parent = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConfigError(f"cannot create --out {path}: {parent} is a file, not a folder; give a path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create --out {path}: {parent} is not a writable folder; choose a path you can "
                          "write to")
    return path


def create_run_dir(command: str, out: str | Path | None = None, *, root: str | Path = "runs",
                   config: dict[str, Any] | None = None, keep_partial: bool = False) -> Path:
    """Create a fresh run directory, mark it incomplete and write ``config.json`` and ``versions.json``.

    ``out`` names the directory explicitly; it must not exist yet, be empty, or hold an incomplete run
    (whose files are removed first unless ``keep_partial``). Otherwise the directory is
    ``<root>/<command>-<YYYYmmdd-HHMMSS>`` with a numeric suffix if that name is taken.
    """
    if out is not None:
        path = check_out(out)
        if path.is_dir() and (path / INCOMPLETE).is_file() and not keep_partial:
            shutil.rmtree(path)
        _mkdir(path, exist_ok=True)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(root) / f"{command}-{stamp}"
        path, k = base, 1
        while True:
            try:
                _mkdir(path, exist_ok=False)
                break
            except FileExistsError:
                k += 1
                path = base.with_name(f"{base.name}-{k}")
    atomic_write_text(path / INCOMPLETE, f"advwsl {command} is running (pid {os.getpid()})\n", overwrite=True)
    meta = {"command": command, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "git_sha": git_sha(), "argv": sys.argv}
    write_json(path / "config.json", {"run": meta, "config": config or {}}, overwrite=keep_partial)
    write_json(path / "versions.json", package_versions(), overwrite=keep_partial)
    return path


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


def mark_complete(run_dir: str | Path) -> None:
    """Remove the incomplete marker: the run's files are final."""
    (Path(run_dir) / INCOMPLETE).unlink(missing_ok=True)


@contextlib.contextmanager
def incomplete(run_dir: str | Path, command: str, hint: str) -> Iterator[Path]:
    """Keep ``run_dir`` marked incomplete while the block runs and mark it complete when it ends. When the
    block raises, ``INCOMPLETE`` records what went wrong and ``hint`` (how to continue); an interrupt is
    re-raised as :class:`RunInterrupted` carrying the directory and the hint."""
    run_dir = Path(run_dir)
    try:
        yield run_dir
    except BaseException as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {type(exc).__name__}: {exc}"
        lines = [f"advwsl {command} {what}", "", hint, ""]
        lines += traceback.format_exception(exc)
        with contextlib.suppress(OSError):
            atomic_write_text(run_dir / INCOMPLETE, "\n".join(lines), overwrite=True)
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, RunInterrupted):
            raise RunInterrupted(run_dir, hint) from None
        raise
    mark_complete(run_dir)


@contextlib.contextmanager
def run_directory(command: str, out: str | Path | None = None, *, config: dict[str, Any] | None = None,
                  resume_hint: str | None = None, keep_partial: bool = False) -> Iterator[Path]:
    """Create a run directory (:func:`create_run_dir`) for the block; mark it complete when the block ends,
    or record in ``INCOMPLETE`` what went wrong and ``resume_hint`` (how to continue; default: rerun with
    this ``--out``) when it raises or is interrupted (see :func:`incomplete`)."""
    run_dir = create_run_dir(command, out, config=config, keep_partial=keep_partial)
    hint = resume_hint or f"rerun the command with --out {run_dir} to start this run again"
    with incomplete(run_dir, command, hint):
        yield run_dir


@contextlib.contextmanager
def resumable_run(run_dir: Path | None, command: str, *, rank: int = 0) -> Iterator[None]:
    """Mark the training run ``run_dir`` (created by :func:`create_run_dir`, or resumed) incomplete while the
    block runs, on rank 0 only: if it stops, the marker and the interrupt say to continue it with
    ``advwsl COMMAND --resume RUN_DIR``."""
    if rank != 0 or run_dir is None:
        yield
        return
    hint = f"continue it with `advwsl {command} --resume {run_dir}`"
    atomic_write_text(Path(run_dir) / INCOMPLETE, f"advwsl {command} is running; if it stops, {hint}\n",
                      overwrite=True)
    with incomplete(run_dir, command, hint):
        yield
