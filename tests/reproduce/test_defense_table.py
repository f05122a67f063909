"""The defense table (Tables A V-5 / A V-6) end to end on a tiny setting: three models, the reference's
attacks and those beyond it, the same rows whether the models run one after another or in worker processes,
and a run interrupted in its attacks continued by ``--resume`` with the same rows."""

from __future__ import annotations

import pandas as pd
import pytest

import advwsl.reproduce.appendix_v_defenses as defenses
from advwsl.attacks.chunks import ChunkStore
from advwsl.reproduce import Entry, get_entry, register_entry, run_entry
from advwsl.reproduce.appendix_v_defenses import DEFENSE_TABLE
from advwsl.runs import RunInterrupted
from advwsl.reproduce.registry import _ENTRIES

SETTINGS = {"dataset": "mnist-5k", "n_samples": 8, "epsilon": 1.5, "batch_size": 4,
            "budgets": {"cw": "1x20", "deepfool": "10", "ddn": "20"}, "extra_budgets": {"fmn": "20"},
            "defense": {"epsilon": 2.4, "epochs": 1, "ddn_steps": 2, "pgd_steps": 2, "from_scratch": False},
            "recipe": {"epochs": 1, "train_fraction": 0.1}}


@pytest.fixture
def tiny():
    register_entry(Entry(id="test-defense", title="tiny defense table", section="test", data="mnist-5k",
                         availability="real", time_cpu="-", time_gpu="-", experiment=DEFENSE_TABLE, settings=SETTINGS,
                         reference=get_entry("A-V-5").reference, findings=get_entry("A-V-5").findings))
    yield "test-defense"
    _ENTRIES._entries.pop("test-defense", None)


COLUMNS = ["defense", "attack", "success", "mean_l2", "median_l2", "accuracy"]


@pytest.mark.slow
def test_defense_table_rows_equal_in_workers_and_resumed(tmp_path, tiny):
    one, outcome = run_entry(tiny, out=str(tmp_path / "one"), progress=False)
    table = pd.read_csv(one / "table.csv")
    ours = table.dropna(subset=["success"])
    assert set(ours.defense) == {"Baseline", "Madry", "Ours"}
    assert (ours.images == 8).all() and (ours.counted <= 8).all()  # every row says what it attacked and counted
    for name, sub in ours.groupby("defense"):
        assert sub.counted.nunique() == 1, name  # one model: the same correctly classified images in every row
    assert "| defense | attack | images | counted |" in outcome.markdown
    beyond = ours[ours.attack.str.contains("beyond the reference")]
    assert len(beyond) == 6  # FMN and "All, with the attacks beyond the reference", for each model
    for kind in ("baseline", "madry", "ddn"):
        assert (one / kind / "beyond-fmn-20.csv").is_file()
    assert "The reference's findings on this run" in outcome.markdown
    two, _ = run_entry(tiny, out=str(tmp_path / "two"), progress=False, workers=2)
    pd.testing.assert_frame_equal(pd.read_csv(two / "table.csv")[COLUMNS], table[COLUMNS], check_exact=False,
                                  rtol=1e-6)

    # interrupted at the second model's attacks beyond the reference, then continued: only what was left runs
    real, calls = defenses.run_attack, {"n": 0}

    def stopping(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    defenses.run_attack = stopping
    try:
        with pytest.raises(RunInterrupted):
            run_entry(tiny, out=str(tmp_path / "three"), progress=False)
    finally:
        defenses.run_attack = real
    done = ChunkStore(tmp_path / "three" / "chunks").count()
    saved = []
    real_save = ChunkStore.save
    ChunkStore.save = lambda self, key, arrays: (saved.append(key), real_save(self, key, arrays))[1]
    try:
        three, _ = run_entry(None, resume=str(tmp_path / "three"), progress=False)
    finally:
        ChunkStore.save = real_save
    assert done > 0 and 0 < len(saved) < done  # the two models' FMN and the last evaluation, not the rest
    pd.testing.assert_frame_equal(pd.read_csv(three / "table.csv")[COLUMNS], table[COLUMNS], check_exact=True)
