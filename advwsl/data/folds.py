"""Dataset organization of section 2.1.2.2: a fixed test set, and k-fold train/validation partitions of the
remaining samples (k = 5, i.e. 80 % train / 20 % validation), seeded and deterministic, grouped by patient
or slide so that no group straddles two sets, and exported as CSV so that runs are comparable.

A *split table* is a :class:`pandas.DataFrame` with one row per sample and at least the columns ``path``,
``label`` and ``split`` (``train``, ``valid`` or ``test``); loaders add their own columns (``patient``,
``magnification``, ...). :func:`assign_folds` gives every non-test row a fold index; :func:`fold_table` turns
that into the split table of one fold; :func:`export_folds` / :func:`read_split_csv` write and read them.
:func:`stratified_subset` keeps a seeded share of each class of a training set (Figures 2.8 and 2.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from ..errors import DatasetError, InputError

SPLITS = ("train", "valid", "test")


def assign_folds(labels: np.ndarray | list, *, n_folds: int = 5, seed: int = 0,
                 groups: np.ndarray | list | None = None) -> np.ndarray:
    """Fold index in ``0..n_folds-1`` for every sample (section 2.1.2.2: fold k's validation set is the
    samples with fold == k, its training set all the others).

    Samples are stratified by label; with ``groups`` (patient or slide ids), whole groups are assigned, each
    group to one fold, so no group appears in both train and validation. Groups are dealt to the folds in a
    seeded random order, per label (a group's label is its most frequent one), each going to the fold that
    currently holds the fewest samples, so fold sizes stay as even as the group sizes allow.
    """
    labels = np.asarray(labels)
    if n_folds < 2:
        raise InputError(f"n_folds must be at least 2, got {n_folds}")
    n = len(labels)
    if groups is None:
        groups = np.arange(n)
    groups = np.asarray(groups)
    if len(groups) != n:
        raise InputError(f"groups has {len(groups)} entries but labels has {n}; give one group per sample")
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(groups, return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(uniq))
    # label of a group = its most frequent label (ties: smallest label)
    label_values, label_idx = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(uniq), len(label_values)), dtype=np.int64)
    np.add.at(counts, (inverse, label_idx), 1)
    group_label = counts.argmax(1)
    fold_of_group = np.full(len(uniq), -1, dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    for c in range(len(label_values)):
        members = np.flatnonzero(group_label == c)
        members = members[rng.permutation(len(members))]
        # larger groups first (stable after the shuffle) so that the greedy fill balances well
        members = members[np.argsort(-sizes[members], kind="stable")]
        class_load = np.zeros(n_folds, dtype=np.int64)
        for g in members:
            # fewest of this class, then fewest overall, then a seeded tie-break by fold order
            order = np.lexsort((rng.permutation(n_folds), load, class_load))
            f = order[0]
            fold_of_group[g] = f
            class_load[f] += sizes[g]
            load[f] += sizes[g]
    return fold_of_group[inverse]


def fold_table(table: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The split table of one fold: rows with ``split == 'test'`` stay test; the other rows become
    ``valid`` when their ``fold`` equals ``fold`` and ``train`` otherwise."""
    if "fold" not in table.columns:
        raise InputError("the table has no 'fold' column; call assign_folds first")
    n_folds = int(table.loc[table["split"] != "test", "fold"].max()) + 1
    if not 0 <= fold < n_folds:
        raise InputError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    out = table.copy()
    trainval = out["split"] != "test"
    out.loc[trainval, "split"] = np.where(out.loc[trainval, "fold"].to_numpy() == fold, "valid", "train")
    return out


def with_folds(table: pd.DataFrame, *, n_folds: int = 5, seed: int = 0,
               group_col: str | None = None) -> pd.DataFrame:
    """``table`` with a ``fold`` column for its non-test rows (-1 for test rows), see :func:`assign_folds`."""
    out = table.copy()
    trainval = (out["split"] != "test").to_numpy()
    groups = out.loc[trainval, group_col].to_numpy() if group_col else None
    folds = np.full(len(out), -1, dtype=np.int64)
    folds[trainval] = assign_folds(out.loc[trainval, "label"].to_numpy(), n_folds=n_folds, seed=seed,
                                   groups=groups)
    out["fold"] = folds
    return out


def export_folds(table: pd.DataFrame, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write ``fold_<k>/{train,valid,test}.csv`` for every fold of ``table`` (which has a ``fold`` column)
    under ``out_dir``; returns the files written. Existing files are kept unless ``overwrite``."""
    out_dir = Path(out_dir)
    n_folds = int(table.loc[table["split"] != "test", "fold"].max()) + 1
    written = []
    for k in range(n_folds):
        ft = fold_table(table, k)
        d = out_dir / f"fold_{k}"
        d.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            path = d / f"{split}.csv"
            if path.exists() and not overwrite:
                raise DatasetError(f"{path} already exists; choose another output folder or pass overwrite")
            ft.loc[ft["split"] == split].drop(columns=["fold"]).to_csv(path, index=False)
            written.append(path)
    return written


def read_split_csv(path: str | Path) -> pd.DataFrame:
    """Read one split CSV written by :func:`export_folds` (columns ``path``, ``label``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split file {path} not found; write it with `advwsl data folds`")
    table = pd.read_csv(path)
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise DatasetError(f"split file {path} lacks the columns {sorted(missing)}; expected path,label,...")
    return table


def check_no_leakage(table: pd.DataFrame, group_col: str) -> None:
    """Raise :class:`DatasetError` if a ``group_col`` value appears in more than one split of ``table``."""
    per_group = table.groupby(group_col)["split"].nunique()
    bad = per_group[per_group > 1]
    if len(bad):
        raise DatasetError(f"groups in more than one split ({group_col}): {list(bad.index[:5])}")


class LabelledSubset(Dataset):
    """The samples ``indices`` of ``dataset``, keeping its attributes (``classes``, ``region_classes``, ...)
    and its ``labels`` restricted to the subset."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(dataset.labels)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.dataset[int(self.indices[i])]

    def __getattr__(self, name: str):
        if name == "dataset":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)


def stratified_subset(dataset: Dataset, fraction: float, *, seed: int = 0) -> LabelledSubset:
    """A seeded share ``fraction`` of each class of ``dataset`` (section 2.1.3.1: "we randomly sample a given
    fraction of the examples in each class to keep the same balance between the classes"): ``round(fraction
    * n_c)`` samples of class c, at least one. BACH's 10 / 25 / 50 / 75 % of 40 training images per class
    keep 4 / 10 / 20 / 30. The dataset needs 1-D integer ``labels`` (one class per image)."""
    if not 0 < fraction <= 1:
        raise InputError(f"the training fraction must be in (0, 1], got {fraction}")
    labels = getattr(dataset, "labels", None)
    if labels is None or np.asarray(labels).ndim != 1:
        raise InputError(f"a class-stratified subset needs one label per image (a 'labels' array); "
                         f"{type(dataset).__name__} has none")
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 2_1_3_1])
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(members))))
        keep.append(np.sort(rng.permutation(members)[:k]))
    return LabelledSubset(dataset, np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64))
