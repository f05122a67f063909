"""The record a run directory carries while its job runs: the ``INCOMPLETE`` marker holding the run's
record (one line ``advwsl-run: {json}``: command, pid, host, process start, start time and, once stopped,
how it ended), reading it back, and whether the process it names may still be running; also the git SHA and
package versions every run directory records. Used by :mod:`advwsl.runs`."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["INCOMPLETE", "RECORD_PREFIX", "git_sha", "package_versions", "incomplete_record"]

#: Name of the marker file of a run directory whose job has not finished.
INCOMPLETE = "INCOMPLETE"
#: Prefix of the line of ``INCOMPLETE`` that holds the run's record (JSON).
RECORD_PREFIX = "advwsl-run: "


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


# ------------------------------------------------------------------------------------ the run's record
def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux; None elsewhere, or for a zombie or
    a process that is gone): with the pid, it tells a live run from a new process that reused its pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def _new_record(command: str) -> dict[str, Any]:
    pid = os.getpid()
    return {"command": command, "pid": pid, "host": socket.gethostname(), "process_start": _process_start(pid),
            "started": _dt.datetime.now().isoformat(timespec="seconds")}


def _marker_text(headline: str, record: dict[str, Any] | None, details: list[str] | None = None) -> str:
    lines = [headline, ""] + ([RECORD_PREFIX + json.dumps(record), ""] if record is not None else [])
    return "\n".join(lines + (details or [])).rstrip("\n") + "\n"


def _parse_record(text: str) -> dict[str, Any] | None:
    line = next((ln for ln in text.splitlines() if ln.startswith(RECORD_PREFIX)), None)
    try:
        record = json.loads(line[len(RECORD_PREFIX):]) if line is not None else None
    except json.JSONDecodeError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("command"), str) and \
        isinstance(record.get("pid"), int) and not isinstance(record.get("pid"), bool)
    return record if ok else None


def _read_marker(run_dir: Path) -> str | None:
    """The text of ``run_dir/INCOMPLETE`` ("" when it is not a readable file), None when there is none."""
    path = run_dir / INCOMPLETE
    if not os.path.lexists(path):
        return None
    try:
        return path.read_text(errors="replace") if path.is_file() else ""
    except OSError:
        return ""


def incomplete_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The record of the run in ``run_dir`` (command, pid, host, start time, how it ended), read from its
    ``INCOMPLETE`` file; None when there is no such file or advwsl did not write it."""
    text = _read_marker(Path(run_dir))
    return _parse_record(text) if text else None


def _running(record: dict[str, Any]) -> bool | None:
    """Whether the process of ``record`` still runs: False once it recorded its end or its pid is gone (or
    reused), None when it ran on another host (it cannot be checked from here)."""
    if record.get("ended"):
        return False
    if record.get("host") != socket.gethostname():
        return None
    pid = record["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    except OSError:
        return False
    if not Path("/proc/self/stat").exists():  # no /proc: the pid alone
        return True
    now = _process_start(pid)
    return now is not None and record.get("process_start") in (None, now)


def _refuse_live(path: Path, record: dict[str, Any], other_host: str, take_over: bool = False) -> None:
    """Raise :class:`ConfigError` when the process of ``record`` may still be writing ``path`` (``take_over``:
    the caller vouches that a run started on another machine has stopped)."""
    running = _running(record)
    who = (f"`advwsl {record['command']}` (pid {record['pid']} on {record.get('host')}, started "
           f"{record.get('started')})")
    if running:
        raise ConfigError(f"{path} is the run directory of {who}, which is still running; wait for it to end or "
                          "choose another --out")
    if running is None and not take_over:
        raise ConfigError(f"{path} is the run directory of {who}, started on another machine: advwsl cannot tell "
                          f"from here whether it still runs, so it leaves the folder alone; {other_host}")
