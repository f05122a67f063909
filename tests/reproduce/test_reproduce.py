"""``advwsl reproduce``: the registry lists the reference's tables and figures, the comparison puts ours
beside the reference's numbers, and an appendix V experiment runs end to end into a run directory."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from advwsl.cli import main
from advwsl.errors import ConfigError
from advwsl.reproduce import Entry, get_entry, list_entries, register_entry, run_entry
from advwsl.reproduce.appendix_v import ATTACK_TABLE
from advwsl.reproduce.compare import Measure, side_by_side, side_by_side_markdown
from advwsl.reproduce.registry import _ENTRIES


def test_appendix_v_entries_are_listed_with_what_they_need():
    ids = [e.id for e in list_entries()]
    for wanted in ("A-V-1", "A-V-2", "A-V-3", "A-V-4", "A-V-5", "A-V-6", "fig-A-V-4"):
        assert wanted in ids
    assert ids.index("A-V-1") < ids.index("A-V-2") < ids.index("A-V-5")
    a1 = get_entry("a-v-1")
    assert a1.availability == "real" and a1.experiment is not None and a1.reference
    assert get_entry("A-V-4").experiment is None and "ImageNet" in get_entry("A-V-4").note
    res = CliRunner().invoke(main, ["reproduce", "--list"])
    assert res.exit_code == 0 and "| A-V-1 |" in res.output and "needs --data-root" in res.output


def test_side_by_side_ratios_and_points():
    ours = [{"attack": "DDN", "budget": "100", "success": 0.99, "mean_l2": 1.5},
            {"attack": "FMN", "budget": "100", "success": 0.98, "mean_l2": 1.1}]  # a row the reference lacks
    reference = [{"attack": "DDN", "budget": "100", "success": 100.0, "mean_l2": 1.2},
                 {"attack": "C&W", "budget": "4x25", "success": 96.0, "mean_l2": 2.0}]
    measures = [Measure("success", "Success (%)", "share"), Measure("mean_l2", "Mean L2")]
    frame = side_by_side(ours, reference, ["attack", "budget"], measures)
    assert frame.loc[0, "success_diff_points"] == pytest.approx(-1.0)
    assert frame.loc[0, "mean_l2_ratio"] == pytest.approx(1.25)
    cw = frame[frame["attack"] == "C&W"].iloc[0]
    assert math.isnan(cw["mean_l2"]) and cw["mean_l2_reference"] == 2.0  # reference-only row
    text = side_by_side_markdown(frame, ["attack", "budget"], measures)
    assert "| DDN | 100 | 99.0 / 100.0 (-1.0) | 1.5000 / 1.2000 (×1.25) |" in text
    assert "| FMN | 100 | 98.0 | 1.1000 |" in text  # ours alone, not "98.0 / - (-)"


def test_entries_that_need_data_say_so():
    with pytest.raises(ConfigError, match="needs its dataset"):
        run_entry("A-V-3", quick=True)
    with pytest.raises(ConfigError, match="cannot run"):
        run_entry("A-V-4")


@pytest.mark.slow
def test_attack_table_runs_end_to_end(tmp_path):
    """A tiny version of Table A V-1 on mnist-5k: a model trained one epoch, DDN and C&W rows, the reference's
    numbers beside ours, figure and files in the run directory."""
    entry = Entry(id="test-A-V-1", title="tiny attack table", section="test", data="mnist-5k", availability="real",
                  time_cpu="-", time_gpu="-", experiment=ATTACK_TABLE,
                  settings={"dataset": "mnist-5k", "n_samples": 12, "batch_size": 12,
                            "rows": [{"attack": "ddn", "budget": "100"}, {"attack": "cw", "budget": "4x25"},
                                     {"attack": "ddn", "budget": "300", "n_samples": 4}],
                            "figure_rows": [("ddn", "100"), ("cw", "4x25")], "recipe": {"epochs": 1}},
                  reference=get_entry("A-V-1").reference, findings=get_entry("A-V-1").findings)
    register_entry(entry)
    try:  # --set: 8 images instead of the entry's 12, said in the table and recorded
        run_dir, outcome = run_entry("test-A-V-1", out=str(tmp_path / "run"), progress=False,
                                     changes={"n_samples": 8, "batch_size": 8})
    finally:
        _ENTRIES._entries.pop("test-A-V-1", None)
    table = pd.read_csv(run_dir / "table.csv")
    ddn = table[(table.attack == "DDN") & (table.budget.astype(str) == "100")].iloc[0]
    assert ddn.success == 1.0 and ddn.success_reference == 100.0 and ddn.median_l2_reference == 1.4506
    assert ddn.median_l2_ratio == pytest.approx(ddn.median_l2 / 1.4506)
    assert "| DDN | 100 | 8 |" in outcome.markdown and "1.4506" in outcome.markdown
    # DDN 300 ran on the first 4 images: every row's mean L2 on those (where both succeeded) in its own column
    assert "| attack | budget | images | counted | same images as DDN 300 |" in outcome.markdown
    few = pd.read_csv(run_dir / "ddn-300.csv")
    mine = pd.read_csv(run_dir / "ddn-100.csv").set_index("index").loc[few["index"]]
    both = few["success"].to_numpy() & mine["success"].to_numpy() & few["originally_correct"].to_numpy()
    if both.any():  # (a one-epoch model may classify none of the 4 correctly: then the cell is empty)
        assert ddn["same images as DDN 300"] == pytest.approx(mine["l2"].to_numpy()[both].mean(), abs=1e-4)
    else:
        assert math.isnan(ddn["same images as DDN 300"])
    assert "- **8 images (`--set n_samples=8`)** — fewer images" in outcome.markdown
    recorded = json.loads((run_dir / "summary.json").read_text())["departures"]
    assert {"what": "8 images (`--set n_samples=8`)", "settings": ["n_samples"]}.items() <= recorded[-2].items()
    assert outcome.markdown.index("Departures from the reference") < outcome.markdown.index("| DDN | 100 | 8 |")
    assert "The reference's findings on this run" in outcome.markdown
    assert "C&W 4x25 (100 gradients) is worse than DDN 100" in outcome.markdown  # both rows ran: a verdict
    for name in ("table.md", "table.csv", "summary.json", "config.json", "ddn-100.csv", "fig-A-V-9.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "INCOMPLETE").exists()
    record = json.loads((run_dir / "config.json").read_text())["config"]
    assert record["settings"]["n_samples"] == 8 and record["changed"] == {"n_samples": 8, "batch_size": 8}


def test_set_changes_nested_settings_and_refuses_unknown_paths():
    entry = get_entry("A-V-1")
    changed = entry.resolved(False, {"rows.2.n_samples": 30, "n_samples": 500})
    assert changed.rows[2].n_samples == 30 and changed.rows[2].budget == "9x10000"
    assert changed.n_samples == 500 and entry.settings.rows[2].n_samples is None  # the entry is untouched
    assert get_entry("A-V-5").resolved(False, {"defense.epochs": 3}).defense.epochs == 3
    for path, phrase in (("nope", "has no setting 'nope'"), ("rows.9.n_samples", "list of 7 items"),
                         ("n_samples.x", "is a value"), ("rows.0.n_sample", "has no setting 'n_sample'"),
                         ("n_samples", "must be >= 1"), ("rows", "must be a list")):
        with pytest.raises(ConfigError, match=phrase):
            entry.resolved(False, {path: -3 if path == "n_samples" else 5 if path == "rows" else 1})
    with pytest.raises(ConfigError, match="must be an integer"):
        entry.resolved(False, {"n_samples": "abc"})
    res = CliRunner().invoke(main, ["reproduce", "A-V-1", "--set", "rows.0.n_sample=1"])
    assert res.exit_code == 2 and "has no setting 'n_sample'" in res.output and "n_samples" in res.output
    assert "Traceback" not in res.output


def test_defense_table_attack_kwargs_are_checked_before_anything_runs(tmp_path):
    """``attack_kwargs`` of a defense table: an attack the table does not run, or a hyper-parameter the attack
    does not take, is refused at once (before any defense is trained)."""
    entry = get_entry("A-V-5")
    fast = entry.resolved(False, {"attack_kwargs": {"cw": {"abort_window_found": 100}}})
    assert fast.attack_kwargs == {"cw": {"abort_window_found": 100}}
    with pytest.raises(ConfigError, match="does not run"):
        entry.resolved(False, {"attack_kwargs": {"pgd": {"steps": 3}}})
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["reproduce", "A-V-5", "--quick", "--no-progress", "--out", str(out), "--set",
                                    'attack_kwargs={"cw": {"abort_window_fond": 100}}'])
    assert res.exit_code != 0 and "abort_window_fond" in res.output and "abort_window_found" in res.output
    assert "Traceback" not in res.output and not out.exists()  # refused before the run directory


def test_figure_constants_attack_kwargs_are_checked_before_anything_runs(tmp_path):
    """Figure A V-2 takes C&W keyword arguments (e.g. the fast abort); a misspelt one is refused before the
    run directory or any model training."""
    from advwsl.reproduce.appendix_v_constants import _constants_kwargs

    entry = get_entry("fig-A-V-2")
    fast = entry.resolved(False, {"attack_kwargs": {"abort_window": 300, "abort_window_found": 100}})
    kwargs = _constants_kwargs(fast)
    assert kwargs["abort_window"] == 300 and kwargs["abort_window_found"] == 100 and kwargs["steps"] == 10000
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["reproduce", "fig-A-V-2", "--quick", "--no-progress", "--out", str(out), "--set",
                                    'attack_kwargs={"abort_window_fond": 100}'])
    assert res.exit_code == 2 and "abort_window_fond" in res.output and "abort_window_found" in res.output
    assert not out.exists()


@pytest.mark.slow
def test_every_quick_row_of_table_a_v_1_means_something(tmp_path):
    """``--quick`` is a smoke test, but each of its rows must attack for real: every row makes most correctly
    classified digits adversarial (C&W's constant search reaches a scale that succeeds), none at 0 %."""
    run_dir, outcome = run_entry("A-V-1", quick=True, out=str(tmp_path / "quick"), progress=False)
    table = pd.read_csv(run_dir / "table.csv").dropna(subset=["success"])
    assert len(table) == 5, table
    for row in table.itertuples():
        assert row.success >= 0.5, (row.attack, row.budget, row.success)
    assert "**Quick run**" in outcome.markdown
