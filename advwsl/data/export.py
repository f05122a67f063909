"""Exporting the folds of a dataset as CSV (section 2.1.2.2: 'the deterministic code used to create the
folds ... is publicly available'), so that runs elsewhere use exactly the same partitions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DatasetError, InputError
from .registry import get_dataset_spec, list_datasets

def dataset_split_table(name: str, root: str | Path | None, *, fold: int, n_folds: int = 5, seed: int = 0,
                        **kwargs) -> pd.DataFrame:
    """The split table (``path``/``index``, ``label``, ``split``, ...) of fold ``fold`` of ``name``."""
    spec = get_dataset_spec(name)
    if spec.split_table is None:
        with_tables = [n for n in list_datasets() if get_dataset_spec(n).split_table is not None]
        raise InputError(f"fold export supports {', '.join(with_tables)} (CAMELYON16 writes its own with "
                         f"`advwsl data camelyon16`), got {name!r}")
    if spec.needs_root and root is None:
        raise DatasetError(f"dataset {spec.name!r} needs its folder (--data-root)")
    return spec.split_table(root, fold=fold, n_folds=n_folds, seed=seed, **kwargs)


def export_dataset_folds(name: str, root: str | Path | None, out_dir: str | Path, *, n_folds: int = 5,
                         seed: int = 0, overwrite: bool = False, **kwargs) -> list[Path]:
    """Write ``<out_dir>/fold_<k>/{train,valid,test}.csv`` for every fold of ``name``; returns the files.
    Existing files are kept (a :class:`DatasetError`) unless ``overwrite``."""
    out_dir = Path(out_dir)
    written = []
    for k in range(n_folds):
        table = dataset_split_table(name, root, fold=k, n_folds=n_folds, seed=seed, **kwargs)
        d = out_dir / f"fold_{k}"
        d.mkdir(parents=True, exist_ok=True)
        for split in ("train", "valid", "test"):
            path = d / f"{split}.csv"
            if path.exists() and not overwrite:
                raise DatasetError(f"{path} already exists; choose another --out folder or pass --overwrite")
            table[table["split"] == split].drop(columns=["split"]).to_csv(path, index=False)
            written.append(path)
    return written
