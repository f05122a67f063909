"""Writing results to disk: atomic writes (a reader, a crash or a second process never sees a half-written
file), JSON conversion of results, and Markdown tables. Every writer refuses to replace an existing file
unless asked to (``overwrite=True``): runs, checkpoints and reports are never lost."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError

__all__ = ["atomic_path", "atomic_write_text", "write_json", "read_json", "to_jsonable", "markdown_table",
           "mean_std", "format_mean_std", "parse_set_pairs"]


def _new_temporary(path: Path) -> Path:
    """Create an empty file beside ``path`` under a name unique to this call, with the permissions of any
    new file (0666 less the umask; ``tempfile.mkstemp`` would make it 0600), and return its path."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")  # unique, as mkstemp names it
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, unique to this process, and move it onto ``path`` when the
    block ends without an error (``os.replace``: atomic on one file system); on an error the temporary
    file is removed and ``path`` is untouched. The file gets the permissions of any new file (0666 less the
    umask), like the files pandas or matplotlib write.

    ``overwrite=False`` refuses (before and after the block) to replace an existing ``path``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; refusing to overwrite it (choose another output folder)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path)
    mode = stat.S_IMODE(os.stat(tmp).st_mode)  # 0666 less the umask
    try:
        yield tmp
        if not overwrite and path.exists():
            raise ConfigError(f"{path} appeared while it was being written (another process?); refusing to "
                              "overwrite it")
        if stat.S_IMODE(os.stat(tmp).st_mode) != mode:  # a writer that recreated it (safetensors: 0600)
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


def to_jsonable(obj: Any, *, strict: bool = False, where: str = "value") -> Any:
    """``obj`` as plain JSON types: dataclasses and mappings as dicts, sequences as lists, paths as strings,
    NumPy / torch scalars and arrays as numbers and lists, non-finite floats as ``None`` (JSON has no NaN).

    With ``strict``, anything else is an :class:`InputError` naming ``where``; otherwise it becomes its
    string form."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj), strict=strict, where=where)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, strict=strict, where=where) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, strict=strict, where=where) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)  # NumPy and torch scalars and arrays
    if callable(tolist):
        return to_jsonable(tolist(), strict=strict, where=where)
    if strict:
        raise InputError(f"{where}: {obj!r} of type {type(obj).__name__} cannot be stored as JSON; use numbers, "
                          "strings, lists or dicts")
    return str(obj)


def write_json(path: str | os.PathLike, data: Any, *, overwrite: bool = False) -> Path:
    """Write ``data`` (see :func:`to_jsonable`) as indented JSON, atomically; an existing file is kept
    unless ``overwrite``."""
    return atomic_write_text(path, json.dumps(to_jsonable(data), indent=2) + "\n", overwrite=overwrite)


def read_json(path: str | os.PathLike, *, what: str = "file") -> Any:
    """Read a JSON file; a missing, truncated or non-JSON file is a :class:`ConfigError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not valid JSON ({exc}); it is truncated or was edited") from None


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], *,
                   align: Sequence[str] | None = None) -> str:
    """A Markdown table; ``align`` gives per column ``"l"`` or ``"r"`` (default: left)."""
    rule = [("---:" if a == "r" else "---") for a in (align or ["l"] * len(header))]
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation, ignoring NaN (the deviation of a single value is NaN: one fold has
    no spread to report)."""
    v = [float(x) for x in values if not math.isnan(float(x))]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else math.nan
    return m, s


def format_mean_std(values: Sequence[float], *, percent: bool = True, digits: int = 2) -> str:
    """``"mean ± std"`` (in percent by default), the reference's table format."""
    m, s = mean_std(values)
    if math.isnan(m):
        return "-"
    k = 100.0 if percent else 1.0
    return f"{m * k:.{digits}f}" if math.isnan(s) else f"{m * k:.{digits}f} ± {s * k:.{digits}f}"


def parse_set_pairs(pairs: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` pairs (the value read as JSON, else kept as text) as a dict, in the order given."""
    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} expects KEY=VALUE (VALUE as JSON), got {pair!r}")
        try:
            given[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            given[key.strip()] = value
    return given
