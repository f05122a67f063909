"""Our numbers beside the reference's: one row per (key), for each measure ours, the reference's and how they
compare — a ratio for norms, times and counts, a difference in points for shares in percent. A row may give
a standard deviation beside a measure (``<name>_std``, e.g. over folds): it is kept and shown as mean ± std."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..io import markdown_table

__all__ = ["Measure", "side_by_side", "side_by_side_markdown"]


class Measure:
    """A measured column: ``name`` in the rows, ``label`` in the table, ``kind`` ``"share"`` (a fraction in
    [0, 1] ours, percent in the reference; compared by difference in points), ``"ratio"`` (compared by
    ours / reference) or ``"plain"`` (shown, not compared), ``digits`` shown."""

    def __init__(self, name: str, label: str, kind: str = "ratio", digits: int = 4) -> None:
        self.name, self.label, self.kind, self.digits = name, label, kind, digits


def _num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def side_by_side(ours: Sequence[dict[str, Any]], reference: Sequence[dict[str, Any]], keys: Sequence[str],
                 measures: Sequence[Measure], extra: Sequence[str] = ()) -> pd.DataFrame:
    """A frame with the ``keys`` columns, the ``extra`` columns of ours (e.g. the number of images) and, per
    measure, ``<name>`` (ours; shares as fractions), ``<name>_reference`` and ``<name>_ratio`` or
    ``<name>_diff_points``. Rows are ours in order; reference rows without a match are appended with our
    values empty."""
    ref = {tuple(str(r.get(k)) for k in keys): r for r in reference}
    rows, seen = [], set()
    for o in ours:
        key = tuple(str(o.get(k)) for k in keys)
        seen.add(key)
        rows.append(_row(o, ref.get(key, {}), [*keys, *extra], measures))
    for key, r in ref.items():
        if key not in seen:
            rows.append(_row({k: r.get(k) for k in keys}, r, [*keys, *extra], measures))
    return pd.DataFrame(rows)


def _row(o: dict[str, Any], r: dict[str, Any], keys: Sequence[str], measures: Sequence[Measure]) -> dict[str, Any]:
    row = {k: o.get(k) for k in keys}
    for m in measures:
        ours, theirs = _num(o.get(m.name)), _num(r.get(m.name))
        row[m.name] = ours
        if f"{m.name}_std" in o:
            row[f"{m.name}_std"] = _num(o.get(f"{m.name}_std"))
        if m.kind == "plain":
            continue
        row[f"{m.name}_reference"] = theirs
        if f"{m.name}_std" in r:
            row[f"{m.name}_std_reference"] = _num(r.get(f"{m.name}_std"))
        if m.kind == "share":
            row[f"{m.name}_diff_points"] = 100 * ours - theirs
        else:
            row[f"{m.name}_ratio"] = ours / theirs if theirs not in (0.0,) and not math.isnan(theirs) else math.nan
    return row


def _fmt(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _key_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _with_std(value: str, std: Any, digits: int, scale: float = 1.0) -> str:
    std = _num(std)
    return value if value == "-" or math.isnan(std) else f"{value} ± {std * scale:.{digits}f}"


def side_by_side_markdown(frame: pd.DataFrame, keys: Sequence[str], measures: Sequence[Measure]) -> str:
    """The frame of :func:`side_by_side` as Markdown: per measure ``ours / reference (ratio or ±points)``,
    or ours alone where the reference has no number, means ± standard deviations where the rows give them."""
    header = [*keys] + [m.label for m in measures]
    rows = []
    for r in frame.to_dict(orient="records"):
        cells = [_key_cell(r[k]) for k in keys]
        for m in measures:
            if m.kind != "plain" and math.isnan(_num(r.get(f"{m.name}_reference"))):
                # no reference number for this cell (a stand-in's extra row, a figure given as plots): ours alone
                scale, digits = (100, 2 if f"{m.name}_std" in r else 1) if m.kind == "share" else (1, m.digits)
                cells.append(_with_std(_fmt(scale * _num(r[m.name]), digits), r.get(f"{m.name}_std"), digits, scale))
            elif m.kind == "plain":
                cells.append(_fmt(r[m.name], m.digits))
            elif m.kind == "share" and (f"{m.name}_std" in r or f"{m.name}_std_reference" in r):
                diff = r[f"{m.name}_diff_points"]
                cells.append(f"{_with_std(_fmt(100 * r[m.name], 2), r.get(f'{m.name}_std'), 2, 100)} / "
                             f"{_with_std(_fmt(r[f'{m.name}_reference'], 2), r.get(f'{m.name}_std_reference'), 2)}"
                             f" ({'' if math.isnan(diff) else '+' if diff >= 0 else ''}{_fmt(diff, 1)})")
            elif m.kind == "share":
                cells.append(f"{_fmt(100 * r[m.name], 1)} / {_fmt(r[f'{m.name}_reference'], 1)} "
                             f"({'' if math.isnan(r[f'{m.name}_diff_points']) else '+' if r[f'{m.name}_diff_points'] >= 0 else ''}"
                             f"{_fmt(r[f'{m.name}_diff_points'], 1)})")
            else:
                cells.append(f"{_fmt(r[m.name], m.digits)} / {_fmt(r[f'{m.name}_reference'], m.digits)} "
                             f"(×{_fmt(r[f'{m.name}_ratio'], 2)})")
        rows.append(cells)
    return markdown_table(header, rows, align=["l"] * len(keys) + ["r"] * len(measures))
