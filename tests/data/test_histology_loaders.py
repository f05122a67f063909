"""BreakHis, BACH and GlaS loaders on tiny fixtures in their official layouts."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from advwsl.data import get_dataset
from advwsl.data.breakhis import BreakHis, split_table as breakhis_split
from advwsl.data.bach import BACH, split_table as bach_split
from advwsl.data.folds import check_no_leakage
from advwsl.data.glas import GlaS, split_table as glas_split
from advwsl.errors import DatasetError, InputError


def test_breakhis_published_fold_and_patient_parsing(breakhis_root):
    table = breakhis_split(breakhis_root, magnification=40, fold=0)
    assert table.attrs["split_source"].startswith("published folds")
    assert len(table) == 13 * 2 and set(table["magnification"]) == {40}
    # patient from the file name, same slide id under two tumour types kept together
    assert (table["patient"] == "14-13412").sum() == 4
    check_no_leakage(table, "patient")
    test = table[table["split"] == "test"]
    assert set(test["patient"]) == {"14-3411F", "14-22704", "14-16716", "14-15570"}
    assert set(table["split"]) == {"train", "valid", "test"}
    ds = BreakHis(breakhis_root, "test", magnification=40)
    s = ds[0]
    assert s["image"].shape == (3, 23, 35) and 0 <= s["image"].min() and s["image"].max() <= 1
    assert s["label"] in (0, 1) and "mask" not in s
    assert sorted(ds.labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_breakhis_without_fold_files_splits_by_patient(tmp_path, breakhis_writer):
    root = breakhis_writer(tmp_path, fold_file=False)
    for fold in range(5):
        table = breakhis_split(root, magnification=100, fold=fold, seed=1)
        assert "seeded" in table.attrs["split_source"]
        check_no_leakage(table, "patient")
        assert table.equals(breakhis_split(root, magnification=100, fold=fold, seed=1))


def test_breakhis_layout_errors(breakhis_root, tmp_path):
    with pytest.raises(DatasetError, match="BreaKHis_v1/histology_slides/breast"):
        BreakHis(tmp_path / "nowhere")
    with pytest.raises(InputError, match="magnification"):
        BreakHis(breakhis_root, magnification=50)
    with pytest.raises(DatasetError, match="at magnification 200X"):
        BreakHis(breakhis_root, magnification=200)
    # a file whose patient does not match its folder
    png = next((breakhis_root / "BreaKHis_v1").rglob("SOB_B_A-14-22549AB-40-001.png"))
    shutil.copy(png, png.parent / "SOB_B_A-14-99999-40-001.png")
    with pytest.raises(DatasetError, match="does not match its folders"):
        BreakHis(breakhis_root)


def test_bach_labels_from_csv_and_half_per_class_test(bach_root):
    table = bach_split(bach_root, fold=0)
    test = table[table["split"] == "test"]
    assert np.bincount(test["label"], minlength=4).tolist() == [2, 2, 2, 2]
    # the test half is the same for every fold; train/valid change
    valids = [set(bach_split(bach_root, fold=k).query("split == 'valid'")["file"]) for k in range(5)]
    assert all(set(bach_split(bach_root, fold=k).query("split == 'test'")["file"]) == set(test["file"])
               for k in range(5))
    assert set().union(*valids) == set(table.loc[table["split"] != "test", "file"])
    ds = get_dataset("bach", bach_root, "test")
    assert isinstance(ds, BACH) and len(ds) == 8 and ds.classes == ("normal", "benign", "in_situ", "invasive")
    s = ds[0]
    assert s["image"].shape == (3, 12, 16) and s["image"].dtype == torch.float32
    assert s["label"] == table.set_index("path").loc[s["path"], "label"]


def test_bach_csv_disagreeing_with_folders(bach_root):
    csv = bach_root / "ICIAR2018_BACH_Challenge" / "Photos" / "microscopy_ground_truth.csv"
    csv.write_text(csv.read_text().replace("n001.tif,Normal", "n001.tif,Benign"))
    with pytest.raises(DatasetError, match="disagree"):
        BACH(bach_root)
    csv.unlink()
    with pytest.raises(DatasetError, match="microscopy_ground_truth.csv"):
        BACH(bach_root)


def test_glas_grades_masks_and_mixed_test(glas_root, glas_images):
    table = glas_split(glas_root, fold=0)
    assert len(table) == len(glas_images)
    test = table[table["split"] == "test"]
    assert set(test["part"]) == {"testA", "testB"} and len(test) == 6
    check_no_leakage(table[table["split"] != "test"], "patient")
    grades = {f"{p}_{k}": g for p, k, _, g in glas_images}
    assert all(("benign", "malignant")[lab] == grades[name] for name, lab in zip(table["name"], table["label"]))
    ds = GlaS(glas_root, "test")
    s = ds[0]
    assert s["mask"].dtype == torch.float32 and set(s["mask"].unique().tolist()) == {0.0, 1.0}
    assert s["mask"].sum() == 4 * 5 + 3 * 6  # both gland instances, binarised
    assert s["mask"].shape == s["image"].shape[-2:]


def test_glas_malformed(glas_root):
    base = next(glas_root.glob("Warwick*"))
    (base / "testB_2_anno.bmp").unlink()
    with pytest.raises(DatasetError, match="testB_2_anno.bmp"):
        GlaS(glas_root)
    (base / "Grade.csv").write_text("image,grade\ntrain_1,benign\n")
    with pytest.raises(DatasetError, match="patient ID"):
        GlaS(glas_root)
