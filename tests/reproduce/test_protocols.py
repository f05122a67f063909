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


def test_figure_a_v_2_finding_is_an_exact_sign_test_over_images_both_models_attacked():
    """Figure A V-2's finding compares constants image by image: failures (inf) leave the comparison, ties
    carry no sign, and the p-value is the exact two-sided binomial one, Holm-adjusted over the defenses."""
    import numpy as np
    from scipy import stats

    from advwsl.reproduce.appendix_v_constants import _constant_findings

    inf = np.inf
    base = np.array([1.0, 1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, inf])
    madry = np.array([4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 1.0, 8.0])  # 9 higher, 1 tie, 1 dropped
    ddn = np.array([0.5, 4.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])  # 1 higher, 1 lower
    names = {"baseline": "Baseline", "madry": "Madry", "ddn": "DDN-trained"}
    runs = {k: (c,) for k, c in (("baseline", base), ("madry", madry), ("ddn", ddn))}
    v_madry, v_ddn = _constant_findings(runs, names)
    p_madry, p_ddn = stats.binomtest(9, 9).pvalue, stats.binomtest(1, 2).pvalue
    assert v_madry.numbers == {"higher": 9, "lower": 0, "n": 10, "p_adjusted": pytest.approx(2 * p_madry)}
    assert v_madry.verdict == "holds"
    assert v_ddn.numbers["higher"] == 1 and v_ddn.numbers["lower"] == 1
    assert v_ddn.numbers["p_adjusted"] == pytest.approx(1.0) and v_ddn.verdict != "holds"
