"""A ``--set`` change is a departure like the entry's own: what it changes, why, and the measured effect
where one was measured (C&W's abort schedules, only for exactly the measured options); a change back to the
reference's own value is none; a change advwsl does not know is still listed, saying no reason was recorded."""

from __future__ import annotations

import pytest

from advwsl.reproduce import departures_markdown, get_entry, run_departures
from advwsl.reproduce.set_departures import set_departure, set_departures

FAST = {"abort_window": 300, "abort_window_found": 100}


def test_fewer_images_name_the_reference_count_and_the_reference_s_own_is_none():
    entry = get_entry("A-V-5")
    d = set_departure(entry, "n_samples", 500)
    assert d.what.startswith("500 images instead of 1000") and "sample size" in d.why and d.settings == ("n_samples",)
    assert set_departure(entry, "n_samples", 1000) is None
    assert "more images" in set_departure(entry, "n_samples", 2000).why


@pytest.mark.parametrize("entry, path, value, effect", [
    ("A-V-5", "attack_kwargs", {"cw": FAST}, "1.0014x"),
    ("fig-A-V-2", "attack_kwargs", FAST, "1.0014x"),
    ("A-V-2", "rows.2.kwargs", FAST, "1.0014x"),  # the C&W 9x10000 row of the targeted table
    ("A-V-5", "attack_kwargs", {"cw": {"abort_window_found": 100}}, "+0.15 %")])
def test_a_measured_abort_schedule_carries_its_effect(entry, path, value, effect):
    d = set_departure(get_entry(entry), path, value)
    assert "abort schedule" in d.what and effect in d.effect


@pytest.mark.parametrize("entry, path, value", [
    ("A-V-5", "attack_kwargs", {"cw": {"abort_window": 200, "abort_window_found": 100}}),
    ("A-V-5", "attack_kwargs", {"cw": {**FAST, "steps": 50}}),  # more than the measured schedule
    ("A-V-5", "attack_kwargs", {"cw": FAST, "ddn": {"steps": 50}}),
    ("A-V-5", "attack_kwargs", {"ddn": FAST}),
    ("A-V-2", "rows.4.kwargs", FAST)])  # a DDN row
def test_other_attack_options_claim_no_effect(entry, path, value):
    d = set_departure(get_entry(entry), path, value)
    assert d.effect == "" and "no effect measured" in d.why


def test_unknown_changes_are_listed_without_a_reason_and_in_order():
    entry = get_entry("A-V-5")
    changes = {"defense.epochs": 10, "defense.checkpoints.madry": "m/model", "extra_budgets": {}}
    found = set_departures(entry, changes)
    assert [d.settings for d in found] == [("defense.epochs",), ("defense.checkpoints.madry",), ("extra_budgets",)]
    assert "no reason recorded" in found[0].why and "full experiment" in found[0].why
    assert found[1].what == "the Madry defense read from m/model" and "checked" in found[1].why
    assert "FMN, FAB" in found[2].what
    assert "quick run" in set_departure(entry, "defense.epochs", 1, quick=True).why


def test_the_reference_s_dataset_is_no_departure_and_drops_the_stand_in_one():
    entry = get_entry("A-V-1")
    on_mnist = run_departures(entry, {"dataset": "mnist"}, False)
    assert not any("mnist-5k" in d.what or "dataset" in d.settings for d in on_mnist)
    assert any("mnist-5k" in d.what for d in run_departures(entry, None, False))
    assert any("mnist-5k" in d.what for d in run_departures(entry, {"dataset": "mnist-5k"}, False))
    assert not any("dataset" in d.settings for d in run_departures(entry, {"dataset": "cifar10"}, False))


def test_every_output_lists_them_after_the_entry_s_own():
    entry = get_entry("A-V-5")
    lines = departures_markdown(entry, {"n_samples": 500, "attack_kwargs": {"cw": FAST}}, False)
    own = [i for i, line in enumerate(lines) if line.startswith("- **mnist-5k")]
    ours = [i for i, line in enumerate(lines) if "500 images instead of 1000" in line or "abort schedule" in line]
    assert own and len(ours) == 2 and own[0] < min(ours)
    assert any("Measured effect: on 63 digits" in line for line in lines)
    assert any("Measured effect: on the two mnist-5k networks" in line for line in lines)  # DeepFool's own
