"""What a ``--set`` change of a reproduce run departs from, said as a :class:`Departure` (what, why, and the
measured effect where one was measured) instead of a bare "changed for this run": the changes that reduced
runs make most (fewer images, C&W's faster abort schedules, defenses read from checkpoints, rows left out)
are known here; any other change is listed with its value and no reason. A change back to the reference's
own value (``--dataset mnist`` or ``cifar10``, the reference's image count) is no departure."""

from __future__ import annotations

import json
import re
from typing import Any

from ..config import Departure
from .registry import Entry

__all__ = ["set_departure", "set_departures"]

_DEFENSES = {"madry": "Madry", "ddn": "DDN-training"}
_ORIGINAL = ("C&W's own schedule runs every search to its steps unless the loss falls by less than 0.01 % over "
             "1,000 steps; ")
#: C&W abort schedules whose effect was measured, the text that says why and the measurement.
MEASURED_ABORTS = (
    ({"abort_window": 300, "abort_window_found": 100},
     _ORIGINAL + "this one checks a 300-step window until the digit's search has found an adversarial and a "
     "100-step window after, at about half the gradients.",
     "on 63 digits of Table A V-1 (experiments/results/A-V-1-cw-fast), C&W 9x10000's mean L2 1.0014x the "
     "original schedule's [1.0010, 1.0021] (paired bootstrap 95 %), every digit made adversarial, at 11,609 "
     "gradients per digit instead of 24,609."),
    ({"abort_window_found": 100},
     _ORIGINAL + "this one keeps that window until the digit's search has found an adversarial and checks a "
     "100-step window after.",
     "C&W 9x10000 against foolbox's on 16 mnist-5k digits per model (benchmarks/bench_cw_deepfool.py): median L2 "
     "+0.15 % (clean) and +0.14 % (PGD-trained) at 2.65-2.90x less time."),
)


def set_departures(entry: Entry, changes: dict[str, Any] | None, quick: bool = False) -> list[Departure]:
    """One departure per ``--set`` change of a run of ``entry`` that departs from the reference (in the order
    given)."""
    found = (set_departure(entry, path, value, quick) for path, value in (changes or {}).items())
    return [d for d in found if d is not None]


def set_departure(entry: Entry, path: str, value: Any, quick: bool = False) -> Departure | None:
    """The departure that ``--set path=value`` makes from the reference's protocol (or, with ``--quick``,
    from the quick run); None for a change to the reference's own value."""
    shown = f"`--set {path}={json.dumps(value)}`"
    protocol = entry.protocol or {}
    if path == "dataset":  # the datasets --dataset offers are the reference's own or the entry's default,
        return None        # whose departure (mnist-5k) the entry declares
    if path == "n_samples":
        theirs = protocol.get("n_samples")
        if theirs is not None and value >= theirs:
            return None if value == theirs else Departure(f"{value} images instead of {theirs} ({shown})",
                                                          "more images than the reference.", settings=(path,))
        return Departure(f"{value} images instead of {theirs} ({shown})" if theirs else f"{value} images ({shown})",
                         "fewer images to fit the machine's time; the findings are tested at this sample size "
                         "(their intervals and p-values say what it can decide).", settings=(path,))
    row = re.fullmatch(r"rows\.(\d+)\.(n_samples|kwargs)", path)
    if row and row.group(2) == "n_samples":
        return Departure(f"row {row.group(1)} on the first {value} images only ({shown})",
                         "the costliest row on fewer images to fit the machine's time; its numbers are over those "
                         "images.", settings=(path,))
    if path == "batch_size":
        return Departure(f"batches of {value} images ({shown})",
                         "memory and time; the attacks treat every image independently, so only the random "
                         "draws seeded per batch (the sanity checks' noise) change.", settings=(path,))
    if path == "extra_budgets" and not value:
        return Departure(f"the attacks beyond the reference (FMN, FAB) left out ({shown})",
                         "they are not in the reference's table; leaving them out saves their time.",
                         settings=(path,))
    if path.startswith("defense.checkpoints."):
        kind = path.rsplit(".", 1)[1]
        return Departure(f"the {_DEFENSES.get(kind, kind)} defense read from {value}",
                         "trained beforehand (its training has its own log); the recipe it records is checked "
                         "against these settings before any work, and a difference must be declared.",
                         settings=(path,))
    if path == "attack_kwargs" or row:
        abort = _measured_abort(entry, path, value, quick)
        if abort is not None:
            schedule, why, effect = abort
            return Departure(f"C&W with the abort schedule {json.dumps(schedule)} ({shown})", why, effect=effect,
                             settings=(path,))
        return Departure(f"attack options changed ({shown})", "set for this run; no effect measured.",
                         settings=(path,))
    run = "quick run" if quick else "full experiment"
    return Departure(shown, f"changed from the {run} for this run; no reason recorded.", settings=(path,))


def _measured_abort(entry: Entry, path: str, value: Any, quick: bool) -> tuple[dict[str, int], str, str] | None:
    """The measured abort schedule that a change sets as C&W's only options: ``attack_kwargs`` flat (an entry
    whose attack is C&W alone) or ``{"cw": {...}}``, or the kwargs of a C&W row (``rows.N.kwargs``)."""
    if path == "attack_kwargs":
        cw = value.get("cw") if isinstance(value, dict) and set(value) == {"cw"} else value
    else:
        rows = getattr(entry.resolved(quick, None), "rows", ())
        index = int(path.split(".")[1])
        cw = value if index < len(rows) and rows[index].attack == "cw" else None
    return next((m for m in MEASURED_ABORTS if cw == m[0]), None)
