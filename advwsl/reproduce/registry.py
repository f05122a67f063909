"""The reference's tables and figures as registered experiments.

An :class:`Entry` is data: the table or figure it reproduces (its ID as the reference numbers it: ``2.5``,
``A-V-1``, figures ``fig-2.8``), what it needs (dataset, where to put it), whether it runs on this machine
(on real data shipped with a package, on the synthetic stand-in, or only with ``--data-root``), how long it
takes, its settings (full and ``--quick``), the reference's numbers, and the experiment type that runs it
(a function of a :class:`Context`). ``advwsl reproduce --list`` reads the registry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import Registry

__all__ = ["AVAILABILITY", "Context", "Entry", "Outcome", "register_entry", "get_entry", "list_entries",
           "override_settings"]

#: How an entry runs here: on real data available offline, on the synthetic stand-in (real data with
#: ``--data-root``), or only with ``--data-root``.
AVAILABILITY = {"real": "real data available offline", "stand-in": "synthetic stand-in (real data with --data-root)",
                "data-root": "needs --data-root"}


@dataclass
class Context:
    """What an experiment type receives: the entry, its settings (the full ones with the ``--quick``
    overrides applied when quick), the data folder, device, the run directory it writes into, and a log."""

    entry: Entry
    settings: dict[str, Any]
    quick: bool
    data_root: str | None
    device: str | None
    run_dir: Path
    progress: bool = True
    log: Callable[[str], None] = print

    @property
    def stand_in(self) -> bool:
        """Whether the run uses the synthetic stand-in instead of the real dataset."""
        return self.entry.availability == "stand-in" and self.data_root is None


@dataclass
class Outcome:
    """What an experiment produced: the printed report (Markdown, ours beside the reference's numbers),
    the files it wrote, and a JSON-ready summary."""

    markdown: str
    files: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """One table or figure of the reference (see the module docstring).

    ``runner`` is the experiment type (None: listed, with the reason in ``note``, but not runnable);
    ``settings`` its full settings and ``quick`` the overrides of the minutes-long smoke version;
    ``reference`` the reference's numbers (rows of dicts) that the output puts beside ours."""

    id: str
    title: str
    section: str
    data: str
    availability: str
    time_cpu: str
    time_gpu: str
    runner: Callable[[Context], Outcome] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    reference: tuple[dict[str, Any], ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.availability not in AVAILABILITY:
            raise ConfigError(f"entry {self.id}: availability must be one of {sorted(AVAILABILITY)}")

    @property
    def kind(self) -> str:
        return "figure" if self.id.startswith("fig-") else "table"

    def resolved(self, quick: bool) -> dict[str, Any]:
        return {**self.settings, **(self.quick if quick else {})}


_ENTRIES: Registry[Entry] = Registry("reproducible table or figure")


def register_entry(entry: Entry) -> Entry:
    return _ENTRIES.register(entry.id, entry)


def _order(entry_id: str) -> tuple:
    body = entry_id.removeprefix("fig-")
    parts = body.split("-") if body.startswith("A-") else ["0", *body.split(".")]
    key = []
    for p in parts:
        key.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return (tuple(key), entry_id.startswith("fig-"))


def get_entry(entry_id: str) -> Entry:
    """The entry ``entry_id`` (IDs are case-insensitive: ``a-v-1`` is ``A-V-1``)."""
    for name in _ENTRIES.names():
        if name.lower() == str(entry_id).lower():
            return _ENTRIES.get(name)
    return _ENTRIES.get(entry_id)


def list_entries() -> list[Entry]:
    """Every registered table and figure, in the reference's order (chapters, then appendices)."""
    return [_ENTRIES.get(n) for n in sorted(_ENTRIES.names(), key=_order)]


def override_settings(settings: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with ``changes`` applied (``advwsl reproduce --set``): each key a path of dict keys and
    list indices joined by dots (``n_samples``, ``defense.epochs``, ``rows.2.n_samples``) to a setting
    that exists, or to a new key of a dict that exists (a row's own ``n_samples``). The value replaces what
    is there. ``settings`` itself is left unchanged."""
    result = copy.deepcopy(settings)
    for path, value in changes.items():
        parts = path.split(".")
        node: Any = result
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[:depth]) or "the settings"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"--set {path}: {where} is a list of {len(node)} items; give an index "
                                      f"0..{len(node) - 1}, not {part!r}")
                key: Any = int(part)
            elif isinstance(node, dict):
                if part not in node and not (last and depth > 0):
                    raise ConfigError(f"--set {path}: {where} has no {part!r}; it has {', '.join(map(str, node))}")
                key = part
            else:
                raise ConfigError(f"--set {path}: {where} is a value ({node!r}), not a group of settings")
            if last:
                node[key] = value
            else:
                node = node[key]
    return result
