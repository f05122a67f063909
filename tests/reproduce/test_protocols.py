"""The reference's protocol by default, departures as data: every setting of an entry that differs from the
reference's recorded protocol is named by one of the entry's declared departures, and every output lists
the departures at the top."""

from __future__ import annotations

from typing import Any

import pytest

from advwsl.reproduce import get_entry, list_entries
from advwsl.reproduce.registry import Entry


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}.{i}"))
        return out
    return {prefix: list(value) if isinstance(value, tuple) else value}


def undeclared(entry: Entry, settings: Any) -> list[str]:
    """The settings paths where ``settings`` differ from the entry's protocol and no departure names them."""
    ours, theirs = _flat(settings.to_dict()), _flat(entry.protocol)
    declared = [p for d in entry.departures for p in d.settings]
    differ = [p for p, v in theirs.items() if ours.get(p, v) != v or p not in ours and p in theirs]
    return [p for p in differ if not any(p == d or p.startswith(d + ".") for d in declared)]


PROTOCOLS = [e for e in list_entries() if e.protocol is not None]


@pytest.mark.parametrize("entry", PROTOCOLS, ids=[e.id for e in PROTOCOLS])
def test_every_departure_from_the_protocol_is_declared(entry):
    assert undeclared(entry, entry.settings) == []


def test_an_undeclared_change_is_caught():
    entry = get_entry("A-V-1")
    changed = entry.resolved(False, {"rows.2.budget": "5x200", "n_samples": 200, "dataset": "mnist"})
    assert undeclared(entry, changed) == ["n_samples", "rows.2.budget"]


def test_appendix_v_entries_record_the_reference_protocol():
    assert {e.id for e in PROTOCOLS} >= {"A-V-1", "A-V-2", "A-V-3", "A-V-5"}
