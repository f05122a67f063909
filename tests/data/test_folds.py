"""Folds of section 2.1.2.2: 80/20, seeded, stratified, grouped without leakage, CSV round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advwsl.data.folds import (assign_folds, check_no_leakage, export_folds, fold_table, read_split_csv,
                               with_folds)
from advwsl.errors import DatasetError, InputError


def test_ungrouped_folds_are_even_stratified_and_deterministic():
    labels = np.repeat([0, 1], [60, 40])
    f = assign_folds(labels, n_folds=5, seed=3)
    assert np.array_equal(f, assign_folds(labels, n_folds=5, seed=3))
    assert not np.array_equal(f, assign_folds(labels, n_folds=5, seed=4))
    assert np.bincount(f).tolist() == [20] * 5  # 80 % train / 20 % valid in every fold
    for k in range(5):
        assert np.bincount(labels[f == k]).tolist() == [12, 8]


def test_grouped_folds_never_split_a_group():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), rng.integers(1, 12, 30))
    labels = (groups % 3 == 0).astype(int)
    f = assign_folds(labels, n_folds=5, seed=0, groups=groups)
    for g in np.unique(groups):
        assert len(np.unique(f[groups == g])) == 1
    sizes = np.bincount(f)
    assert sizes.max() - sizes.min() <= 12  # as even as the largest group allows


def test_split_tables_export_and_leakage(tmp_path):
    rng = np.random.default_rng(1)
    patients = np.repeat([f"p{i}" for i in range(20)], 5)
    table = pd.DataFrame({"path": [f"img{i}.png" for i in range(100)], "label": (rng.random(100) > 0.5).astype(int),
                          "patient": patients, "split": np.where(np.arange(100) >= 80, "test", "train")})
    t = with_folds(table, group_col="patient", seed=0)
    assert (t.loc[t["split"] == "test", "fold"] == -1).all()
    for k in range(5):
        ft = fold_table(t, k)
        check_no_leakage(ft, "patient")
        assert set(ft["split"]) == {"train", "valid", "test"}
    files = export_folds(t, tmp_path)
    assert len(files) == 15
    back = read_split_csv(tmp_path / "fold_2" / "valid.csv")
    assert back["path"].tolist() == fold_table(t, 2).query("split == 'valid'")["path"].tolist()
    with pytest.raises(DatasetError, match="already exists"):
        export_folds(t, tmp_path)
    leaky = fold_table(t, 0).copy()
    leaky.loc[leaky.index[0], "split"] = "test"
    with pytest.raises(DatasetError, match="more than one split"):
        check_no_leakage(leaky, "patient")


def test_bad_fold_arguments(tmp_path):
    with pytest.raises(InputError, match="n_folds"):
        assign_folds([0, 1], n_folds=1)
    with pytest.raises(InputError, match="groups"):
        assign_folds([0, 1, 0], groups=[1, 2])
    with pytest.raises(DatasetError, match="not found"):
        read_split_csv(tmp_path / "missing.csv")
