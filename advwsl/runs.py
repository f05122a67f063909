"""Run directories: ``runs/<command>-<timestamp>/`` with the resolved config, package versions and the
git SHA when available. Nothing already on disk is ever overwritten."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


def _jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    try:  # numpy / torch scalars
        return obj.item()
    except Exception:  # noqa: BLE001 - last resort: a readable string
        return str(obj)


def write_json(path: str | Path, data: Any, *, overwrite: bool = False) -> Path:
    """Write ``data`` as indented JSON; refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; refusing to overwrite it (choose another output folder)")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


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


def create_run_dir(command: str, out: str | Path | None = None, *, root: str | Path = "runs",
                   config: dict[str, Any] | None = None) -> Path:
    """Create a fresh run directory and write ``config.json`` and ``versions.json`` into it.

    ``out`` names the directory explicitly; it must not exist yet or be empty. Otherwise the directory is
    ``<root>/<command>-<YYYYmmdd-HHMMSS>`` with a numeric suffix if that name is taken.
    """
    if out is not None:
        path = Path(out)
        if path.exists() and any(path.iterdir()):
            raise ConfigError(f"output folder {path} already exists and is not empty; choose a new --out "
                              "(runs are never overwritten)")
        path.mkdir(parents=True, exist_ok=True)
    else:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(root) / f"{command}-{stamp}"
        path, k = base, 1
        while True:
            try:
                path.mkdir(parents=True, exist_ok=False)
                break
            except FileExistsError:
                k += 1
                path = base.with_name(f"{base.name}-{k}")
    meta = {"command": command, "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "git_sha": git_sha(), "argv": sys.argv}
    write_json(path / "config.json", {"run": meta, "config": config or {}})
    write_json(path / "versions.json", package_versions())
    return path
