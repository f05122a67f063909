"""``advwsl reproduce``: the reference's tables and figures as registered experiments (see
:mod:`.registry`), each run into a run directory with our numbers beside the reference's.

Entries: chapter 2 (:mod:`.chapter2`), chapter 3 (:mod:`.chapter3`), chapter 4 and appendix III
(:mod:`.chapter4`), all run by the experiment type of :mod:`.wsl` except Table 2.4; appendix V
(:mod:`.appendix_v`, :mod:`.appendix_v_defenses`, :mod:`.appendix_v_constants`; entries in
:mod:`.appendix_v_entries`)."""

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from ..config import Departure
from ..errors import ConfigError
from ..io import atomic_write_text, to_jsonable, write_json
from ..report_html import write_html_report
from ..attacks.chunks import ChunkStore
from ..runs import CHUNKS, INCOMPLETE, check_out, run_directory
from ..utils import select_device
from . import appendix_v_entries, chapter2, chapter3, chapter4  # noqa: F401  (they register their entries)
from .registry import AVAILABILITY, Context, Entry, Experiment, Outcome, get_entry, list_entries, register_entry
from .set_departures import set_departures

__all__ = ["AVAILABILITY", "Context", "Entry", "Experiment", "Outcome", "get_entry", "list_entries", "register_entry",
           "run_entry", "describe_entries", "departures_markdown", "run_departures"]


def describe_entries() -> list[dict[str, str]]:
    """One row per entry for ``advwsl reproduce --list``."""
    return [{"id": e.id, "what": e.title, "section": e.section, "runs here": AVAILABILITY[e.availability]
             if e.experiment is not None else "not runnable: " + e.note, "data": e.data, "CPU time": e.time_cpu,
             "GPU time": e.time_gpu} for e in list_entries()]


def run_departures(entry: Entry, changes: dict[str, Any] | None, quick: bool,
                   outcome: Outcome | None = None) -> list[Departure]:
    """Every departure of a run from the reference's protocol: the entry's declared ones (but those about
    its dataset when ``--dataset`` chose another), those the run found (``outcome``'s: a stand-in and its
    recipe) and every ``--set`` change."""
    default = entry.settings.to_dict().get("dataset")
    other_data = (changes or {}).get("dataset", default) != default
    own = [d for d in entry.departures if not (other_data and "dataset" in d.settings)]
    return [*own, *(outcome.departures if outcome is not None else ()), *set_departures(entry, changes, quick)]


def departures_markdown(entry: Entry, changes: dict[str, Any] | None, quick: bool,
                        outcome: Outcome | None = None) -> list[str]:
    """The departures of a run from the reference's protocol (:func:`run_departures`, after the ``--quick``
    version), as the Markdown list every output starts with."""
    lines = ["## Departures from the reference", ""]
    if quick:
        lines.append("- **Quick run** (`--quick`): fewer images, epochs and steps than the full experiment; a smoke "
                     "test of the pipeline, not a result.")
    for d in run_departures(entry, changes, quick, outcome):
        lines.append(f"- **{d.what}** — {d.why}" + (f" Measured effect: {d.effect}" if d.effect else "") if d.why
                     else f"- {d.what}")  # a note on how a stand-in is built
    return lines + [""] if len(lines) > 2 else []


def _interrupted_record(folder: str | Path, entry_id: str | None) -> dict[str, Any]:
    """The record (``config.json``'s ``config``) of the interrupted ``advwsl reproduce`` run in ``folder``,
    for ``--resume``; a :class:`ConfigError` saying what to do when there is none to continue."""
    path = Path(folder)
    if not (path / INCOMPLETE).is_file():
        what = "a complete run" if (path / "table.md").is_file() else "not an advwsl run directory"
        raise ConfigError(f"--resume {path}: {what}; there is nothing to continue (start a run with --out)")
    try:
        record = json.loads((path / "config.json").read_text()).get("config", {})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume {path}: its config.json cannot be read ({exc}); start the run again in a new "
                          "--out") from None
    if not isinstance(record, dict) or "entry" not in record or "settings" not in record:
        raise ConfigError(f"--resume {path}: not the run directory of `advwsl reproduce` (its config.json names no "
                          "entry); continue it with the command that made it")
    if entry_id is not None and get_entry(entry_id).id != record["entry"]:
        raise ConfigError(f"--resume {path}: that is a run of {record['entry']}, not {entry_id}; drop the ID or give "
                          f"{record['entry']}")
    return record


def run_entry(entry_id: str | None, *, quick: bool = False, dataset: str | None = None,
              data_root: str | None = None, device: str | None = None, out: str | None = None,
              progress: bool = True, log: Callable[[str], None] | None = None,
              changes: dict[str, Any] | None = None, workers: int = 1, resume: str | Path | None = None,
              reuse: tuple[str | Path, ...] = (), take_over: bool = False) -> tuple[Path, Outcome]:
    """Run the entry ``entry_id`` (``--quick``: the minutes-long smoke version) into a new run directory:
    ``table.md`` (its departures from the reference first, then ours beside the reference's numbers),
    ``table.csv``, figures, ``summary.json`` and the exact configuration in ``config.json``. ``dataset``
    switches an entry to another dataset it supports (appendix V: ``mnist-5k``, ``mnist``, ``cifar10``).
    ``changes`` (``--set``) change settings of the run (dotted paths checked against the settings type, e.g.
    fewer images to fit a machine's time); the output lists them with the departures, and ``config.json``
    records them.

    ``resume`` continues the interrupted run in that folder with the settings it started with (its
    ``config.json``; ``quick``, ``dataset``, ``data_root``, ``changes`` and ``out`` are not given then, and
    ``device`` and ``workers`` are the run's own unless given): the
    attacks read back the chunks they had finished (:mod:`advwsl.attacks.chunks`) and the outputs are those
    of an uninterrupted run. ``config.json`` keeps the first start and lists each resumption. ``take_over``
    continues a run started on another machine whose process cannot be checked from here (a crashed job,
    a lost node), on the caller's word that it has stopped.

    The chunks stay in ``RUN_DIR/chunks`` after the run: ``reuse`` (run directories of earlier runs) reads
    theirs back, so a run that changes one row of a table (e.g. an attack's option) attacks that row only."""
    say = log or (lambda message: None)
    first = None
    if resume is not None:
        first = _interrupted_record(resume, entry_id)
        entry_id, quick, changes, data_root = first["entry"], first["quick"], first["changed"], first["data_root"]
        device = device if device is not None else first.get("device")
        workers = workers if workers > 1 else int(first.get("workers") or 1)  # (the run's own, unless given)
        dataset, out = None, str(resume)
    entry, changes, settings = _resolved(entry_id, quick, dataset, changes, first, resume)
    if entry.availability == "data-root" and data_root is None:
        raise ConfigError(f"{entry.id} needs its dataset: {entry.data}")
    select_device(device)
    for folder in reuse:
        if not (Path(folder) / CHUNKS).is_dir():
            raise ConfigError(f"--reuse {folder}: no attack chunks there ({Path(folder) / CHUNKS}); give the run "
                              "directory of an earlier advwsl reproduce run")
    check_out(out, command=f"reproduce-{entry.id}", resuming=first is not None, take_over=take_over)
    record = {"entry": entry.id, "title": entry.title, "quick": quick, "changed": changes,
              "settings": settings.to_dict(), "departures": [d.to_dict() for d in run_departures(entry, changes, quick)],
              "data_root": data_root, "device": device, "workers": workers,
              "reused": [str(r) for r in reuse] or (first or {}).get("reused", [])}
    hint = ("continue it with `advwsl reproduce --resume {run_dir}` (the attacks' finished chunks are read back), "
            "or choose a new --out to start again")
    with run_directory(f"reproduce-{entry.id}", out, config=record, keep_partial=(CHUNKS,) if first else False,
                       resume=hint, take_over=take_over) as run_dir:
        if first is not None:
            say(f"continuing {run_dir}: {_chunk_count(run_dir)} finished chunk(s) of its attacks are read back")
        for folder in reuse:
            say(f"reusing {_link_chunks(Path(folder) / CHUNKS, run_dir / CHUNKS)} attack chunk(s) of {folder}")
        outcome = entry.experiment.run(Context(entry, settings, quick, data_root, device, run_dir, progress, say,
                                               workers))
        _write_outputs(run_dir, entry, outcome, changes, quick)
    return run_dir, outcome


def _resolved(entry_id: str | None, quick: bool, dataset: str | None, changes: dict[str, Any] | None,
              first: dict[str, Any] | None, resume: Any) -> tuple[Entry, dict[str, Any], Any]:
    """The entry, the ``--set`` changes (with ``--dataset``) and the checked settings of a run; for a
    continued run (``first``: its record) the settings must be those it started with."""
    if entry_id is None:
        raise ConfigError("give the ID of a table or figure, e.g. advwsl reproduce A-V-1 --quick")
    entry = get_entry(entry_id)
    if entry.experiment is None:
        raise ConfigError(f"{entry.id} is listed but cannot run: {entry.note}")
    changes = dict(changes or {})
    if dataset is not None:
        if "dataset" not in entry.settings.keys():
            raise ConfigError(f"{entry.id} has no --dataset choice")
        changes = {"dataset": dataset, **changes}
    settings = entry.resolved(quick, changes)
    if first is not None and _plain(settings.to_dict()) != _plain(first["settings"]):
        raise ConfigError(f"--resume {resume}: the settings of {entry.id} are no longer those the run started with "
                          "(advwsl was updated since?); its finished chunks would not match: start it again in a new "
                          "--out")
    if entry.experiment.check is not None:
        entry.experiment.check(settings)
    return entry, changes, settings


def _write_outputs(run_dir: Path, entry: Entry, outcome: Outcome, changes: dict[str, Any], quick: bool) -> None:
    """``table.md`` (the departures first), ``summary.json`` and ``report.html`` of a finished run."""
    head, _, body = outcome.markdown.partition("\n")
    departures = "\n".join(departures_markdown(entry, changes, quick, outcome))
    if departures:
        outcome.markdown = f"{head}\n\n{departures}{body}" if head.startswith("#") else \
            f"{departures}\n{outcome.markdown}"
    atomic_write_text(run_dir / "table.md", outcome.markdown + "\n")
    write_json(run_dir / "summary.json", {"entry": entry.id, "quick": quick, "changed": changes,
                                          "departures": [d.to_dict() for d in run_departures(entry, changes, quick,
                                                                                             outcome)],
                                          **outcome.summary})
    write_html_report(run_dir, f"advwsl reproduce {entry.id}: {entry.title}")


def _link_chunks(source: Path, target: Path) -> int:
    """Hard-link (or copy) the chunk files of ``source`` into ``target`` (those it lacks); how many."""
    target.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in sorted(source.glob("*.npz")):
        if (target / path.name).exists():
            continue
        try:
            os.link(path, target / path.name)
        except OSError:  # another file system, or no hard links
            shutil.copy2(path, target / path.name)
        n += 1
    return n


def _plain(value: Any) -> Any:
    """``value`` as its JSON reads back (tuples as lists), for comparing settings with a saved record."""
    return json.loads(json.dumps(to_jsonable(value), sort_keys=True))


def _chunk_count(run_dir: Path) -> int:
    return ChunkStore(run_dir / CHUNKS).count()
