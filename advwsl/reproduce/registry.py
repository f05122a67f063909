"""The reference's tables and figures as registered experiments.

An :class:`Entry` is data: the table or figure it reproduces (its ID as the reference numbers it: ``2.5``,
``A-V-1``, figures ``fig-2.8``), what it needs (dataset, where to put it), whether it runs on this machine
(on real data shipped with a package, on the synthetic stand-in, or only with ``--data-root``), how long it
takes, its typed settings (full and ``--quick``; :mod:`advwsl.config.reproduce`), the reference's numbers,
its departures from the reference's protocol, and the kind of experiment that runs it (an
:class:`Experiment`: a function of a :class:`Context` and its settings type). ``advwsl reproduce --list``
reads the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, Departure, set_path
from ..errors import ConfigError
from ..registry import Registry
from ..runs import CHUNKS

__all__ = ["AVAILABILITY", "Context", "Entry", "Experiment", "Outcome", "register_entry", "get_entry",
           "list_entries"]

#: How an entry runs here: on real data available offline at reduced scale (mnist-5k: 5,000 real MNIST
#: digits, a declared departure in every output), on the synthetic stand-in (real data with ``--data-root``),
#: or only with ``--data-root``.
AVAILABILITY = {"real": "real digits offline at reduced scale (mnist-5k; full MNIST with --data-root)", "stand-in": "synthetic stand-in (real data with --data-root)",
                "data-root": "needs --data-root"}


@dataclass(frozen=True)
class Experiment:
    """A kind of experiment: the function that runs an entry (``run(ctx) -> Outcome``), the type of its
    settings (a config of :mod:`advwsl.config.reproduce`) and, optionally, a ``check`` of the resolved
    settings that needs more than their types (e.g. attack hyper-parameters against the attack's signature),
    run before anything is trained, loaded or written."""

    name: str
    run: Callable[[Context], Outcome]
    settings: type[Config]
    check: Callable[[Any], None] | None = None


@dataclass
class Context:
    """What an experiment receives: the entry, its settings (the full ones with the ``--quick`` overrides
    applied when quick, and the ``--set`` changes), the data folder, device, the run directory it writes
    into, and a log."""

    entry: Entry
    settings: Any
    quick: bool
    data_root: str | None
    device: str | None
    run_dir: Path
    progress: bool = True
    log: Callable[[str], None] = print
    workers: int = 1

    @property
    def chunks(self) -> Path:
        """Where the attacks save their finished chunks (``run_attack``'s ``checkpoint``): what
        ``advwsl reproduce --resume`` and ``--reuse`` read back."""
        return self.run_dir / CHUNKS

    @property
    def stand_in(self) -> bool:
        """Whether the run uses the synthetic stand-in instead of the real dataset."""
        return self.entry.availability == "stand-in" and self.data_root is None


@dataclass
class Outcome:
    """What an experiment produced: the printed report (Markdown, ours beside the reference's numbers),
    the files it wrote, a JSON-ready summary, and the departures only the run itself knows (a synthetic
    stand-in and its recipe, when no ``--data-root`` was given), listed with the entry's."""

    markdown: str
    files: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    departures: list[Departure] = field(default_factory=list)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s keys replaced (nested groups of settings merged key by key)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One table or figure of the reference (see the module docstring).

    ``experiment`` is its kind (None: listed, with the reason in ``note``, but not runnable); ``settings``
    its full settings (a mapping, built into the experiment's settings type at registration, or that type);
    ``quick`` the overrides of the minutes-long smoke version; ``reference`` the reference's numbers (rows of
    dicts) that the output puts beside ours; ``departures`` how a run of it departs from the reference's
    protocol (reduced scale, stand-ins, other implementations), shown at the top of every output;
    ``protocol`` the reference's own settings where they can be written in the same terms (a test checks
    that every setting that differs from them is named by a departure); ``findings`` the reference's claims
    (:mod:`advwsl.reproduce.findings`) every output tests on its own numbers."""

    id: str
    title: str
    section: str
    data: str
    availability: str
    time_cpu: str
    time_gpu: str
    experiment: Experiment | None = None
    settings: Any = None
    quick: dict[str, Any] = field(default_factory=dict)
    reference: tuple[dict[str, Any], ...] = ()
    departures: tuple[Departure, ...] = ()
    protocol: dict[str, Any] | None = None
    findings: tuple[Any, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        if self.availability not in AVAILABILITY:
            raise ConfigError(f"entry {self.id}: availability must be one of {sorted(AVAILABILITY)}")
        if self.experiment is not None and not isinstance(self.settings, self.experiment.settings):
            object.__setattr__(self, "settings", self.experiment.settings.from_mapping(
                dict(self.settings or {}), where=f"entry {self.id} settings"))
        object.__setattr__(self, "departures", tuple(d if isinstance(d, Departure) else Departure.from_mapping(d)
                                                     for d in self.departures))
        if self.experiment is not None and self.quick:
            self.resolved(True)  # the quick settings are checked at registration too

    @property
    def kind(self) -> str:
        return "figure" if self.id.startswith("fig-") else "table"

    def resolved(self, quick: bool, changes: dict[str, Any] | None = None) -> Any:
        """The settings of a run: the full ones, with the ``quick`` overrides when ``quick``, and the
        ``--set`` ``changes`` (dotted paths), checked against the settings type."""
        data = self.settings.to_dict()
        if quick:
            data = _merge(data, self.quick)
        for path, value in (changes or {}).items():
            data = set_path(data, path, value)
        where = "--set" if changes else f"entry {self.id} {'quick ' if quick else ''}settings"
        return self.experiment.settings.from_mapping(data, where=where)
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
