"""Every number transcribed from the reference (the ``reference`` rows of every table entry) is checked
against the table it comes from in the reference's text: the values of a row (for a method spread over
several column groups, all its cells in the entry's order) appear, in that order, on the table's line of that
method. Skipped with a message when the reference text is not present."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from advwsl.reproduce import list_entries

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "000_4534d1f2b6f27dea.txt"
KEYS = {"method", "group", "attack", "budget", "defense", "dataset", "patch size"}


def _caption(entry_id: str) -> str:
    return f"Table-{entry_id[:1]} {entry_id[2:]}" if entry_id.startswith("A-") else f"Table {entry_id}"


def _block(text: str, caption: str) -> list[str]:
    """The lines of the table under its caption in the body (not in the list of tables)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(caption + " ") and "...." not in line]
    assert starts, f"{caption} not found in the reference"
    out = []
    for line in lines[starts[0] + 1:starts[0] + 300]:
        if re.match(r"^Table[- ]", line) and out:
            break
        out.append(line)
    return out


def _numbers(line: str) -> list[float]:
    line = re.sub(r"<[^>]+>|\$|\\pm", " ", line)
    line = re.sub(r"(?<=\d)[ ,](?=\d{3}\b)", "", line)  # 54 007, 137,769 -> 54007, 137769
    return [float(t) for t in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", line)]


def _values(row: dict) -> list[float]:
    out = []
    for key, value in row.items():
        if key in KEYS or key.endswith("_std") or value is None:
            continue
        out.append(float(value))
        std = row.get(f"{key}_std")
        if std is not None:
            out.append(float(std))
    return out


def _subsequence(needle: list[float], hay: list[float]) -> bool:
    i = 0
    for x in hay:
        if i < len(needle) and math.isclose(x, needle[i], rel_tol=1e-9, abs_tol=1e-9):
            i += 1
    return i == len(needle)


def _name(row: dict) -> str | None:
    return row.get("method")


def _first_cell(line: str) -> str:
    return re.sub(r"<[^>]+>|\*", "", line.split("\t")[0]).strip()


TABLES = [e for e in list_entries() if e.kind == "table" and e.reference]


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"the reference text is not at {REFERENCE}")
@pytest.mark.parametrize("entry", TABLES, ids=[e.id for e in TABLES])
def test_every_transcribed_number_is_in_its_table(entry):
    block = _block(REFERENCE.read_text(), _caption(entry.id))
    rows: dict[str, list[dict]] = {}
    for row in entry.reference:  # a method's cells over the column groups, in order; other rows one by one
        key = _name(row) or repr(list(row.items()))
        rows.setdefault(key, []).append(row)
    for key, group in rows.items():
        needle = [v for row in group for v in _values(row)]
        name = _name(group[0])
        mine = [line for line in block if name and _first_cell(line) == re.sub(r"\*", "", name).strip()]
        if mine:  # a method's line, its parts joined (a table split in two keeps one line per part)
            hay = [x for line in mine for x in _numbers(line)]
            measures = [k for k in group[0] if k not in KEYS and not k.endswith("_std")]
            by_measure = all(_subsequence([x for r in group for x in _values({m: r.get(m), f"{m}_std": r.get(
                f"{m}_std")})], hay) for m in measures)  # a table laid out measure by measure, then group by group
            found = _subsequence(needle, hay) or (by_measure and all(_subsequence(_values(r), hay) for r in group))
        elif name:  # a transposed table (one line per measure, a column per group)
            measures = [k for k in group[0] if k not in KEYS and not k.endswith("_std")]
            found = all(any(_subsequence([float(r[m]) for r in group], _numbers(line)) for line in block)
                        for m in measures)
        else:  # a row named by its attack, budget or defense: on the line those name (cells filled down)
            found = any(_names_row(row_keys, group[0]) and _subsequence(needle, _numbers(line))
                        for row_keys, line in _keyed_lines(block))
        assert found, f"{entry.id}: {key}: {needle} is not on the reference's line of that row"


def _norm(text: str) -> str:
    text = re.sub(r"<[^>]+>|\*", "", text).replace("×", "x").lower()
    return re.sub(r"(?<=\d) (?=\d{3}\b)", "", text).strip()


def _keyed_lines(block: list[str]) -> list[tuple[list[str], str]]:
    """Each line of a table with its key cells (those before the first measured value, one with a decimal
    point), an empty key cell taking the value of the line above (the reference leaves repeated names blank)."""
    out, above = [], []
    for line in block:
        cells = line.split("\t")
        n = next((i for i, c in enumerate(cells) if re.search(r"\d\.\d", c)), len(cells))
        keys = [_norm(c) or (above[i] if i < len(above) else "") for i, c in enumerate(cells[:n])]
        above = keys
        out.append((keys, line))
    return out


def _names_row(keys: list[str], row: dict) -> bool:
    """Whether a line's key cells name the row: its attack, budget and defense (each a whole cell or part of
    one, e.g. "C&W 9x10000" or "Madry et al.")."""
    text = " ".join(keys)
    for key in ("attack", "budget", "defense"):
        if key in row and not re.search(rf"(?<![\w.]){re.escape(_norm(str(row[key])))}(?![\w.])", text):
            return False
    return True


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"the reference text is not at {REFERENCE}")
@pytest.mark.parametrize("entry_id, row, swap", [("A-V-1", 5, {"budget": "1000"}),  # DDN 300's numbers as 1000's
                                                 ("A-V-5", 0, {"defense": "Madry"}),
                                                 ("A-V-2", 3, {"attack": "C&W"})])
def test_a_row_under_another_row_s_name_is_not_found(entry_id, row, swap):
    from advwsl.reproduce import get_entry

    block = _block(REFERENCE.read_text(), _caption(entry_id))
    right = dict(get_entry(entry_id).reference[row])
    wrong = {**right, **swap}

    def found(r):
        return any(_names_row(keys, r) and _subsequence(_values(r), _numbers(line)) for keys, line in _keyed_lines(block))

    assert found(right) and not found(wrong)
