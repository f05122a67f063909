"""Tiny dataset fixtures written in the official on-disk layouts and naming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# BreakHis patients: (class, tumour type folder, type code, year-slide). 14-13412 appears under two
# malignant types, as in the real dataset.
BREAKHIS_PATIENTS = [
    ("benign", "adenosis", "A", "14-22549AB"), ("benign", "adenosis", "A", "14-29960CD"),
    ("benign", "fibroadenoma", "F", "14-9133"), ("benign", "fibroadenoma", "F", "14-21998CD"),
    ("benign", "tubular_adenoma", "TA", "14-3411F"), ("benign", "phyllodes_tumor", "PT", "14-22704"),
    ("malignant", "ductal_carcinoma", "DC", "14-13412"), ("malignant", "lobular_carcinoma", "LC", "14-13412"),
    ("malignant", "ductal_carcinoma", "DC", "14-2523"), ("malignant", "mucinous_carcinoma", "MC", "14-10147"),
    ("malignant", "papillary_carcinoma", "PC", "15-190EF"), ("malignant", "ductal_carcinoma", "DC", "14-16716"),
    ("malignant", "lobular_carcinoma", "LC", "14-15570"),
]


def _rgb(rng, h, w):
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


def write_breakhis(root: Path, *, per_mag: int = 2, mags=(40, 100), size=(23, 35), fold_file: bool = True) -> Path:
    rng = np.random.default_rng(0)
    base = root / "BreaKHis_v1" / "histology_slides" / "breast"
    lines = []
    for i, (cls, tdir, code, patient) in enumerate(BREAKHIS_PATIENTS):
        c = "B" if cls == "benign" else "M"
        folder = base / cls / "SOB" / tdir / f"SOB_{c}_{code}_{patient}"  # underscore before the year
        for mag in mags:
            d = folder / f"{mag}X"
            d.mkdir(parents=True, exist_ok=True)
            for k in range(1, per_mag + 1):
                name = f"SOB_{c}_{code}-{patient}-{mag}-{k:03d}.png"  # dash before the year
                Image.fromarray(_rgb(rng, *size)).save(d / name)
                # the published fold: the last patients of each class are test patients
                lines.append(f"{name}|{mag}|1|{'test' if i in (4, 5, 11, 12) else 'train'}")
    if fold_file:
        (root / "BreaKHis_v1" / "dsfold1.txt").write_text("\n".join(lines) + "\n")
    return root


def write_bach(root: Path, per_class: int = 4, size=(12, 16)) -> Path:
    rng = np.random.default_rng(1)
    photos = root / "ICIAR2018_BACH_Challenge" / "Photos"
    rows = []
    for folder, prefix in (("Normal", "n"), ("Benign", "b"), ("InSitu", "is"), ("Invasive", "iv")):
        (photos / folder).mkdir(parents=True, exist_ok=True)
        for k in range(1, per_class + 1):
            name = f"{prefix}{k:03d}.tif"
            Image.fromarray(_rgb(rng, *size)).save(photos / folder / name)
            rows.append(f"{name},{folder}")
    (photos / "microscopy_ground_truth.csv").write_text("\n".join(rows) + "\n")
    return root


GLAS_IMAGES = ([("train", k, 1 + (k - 1) // 2, "benign" if k % 2 else "malignant") for k in range(1, 11)]
               + [("testA", k, 20 + k, "malignant" if k % 2 else "benign") for k in range(1, 5)]
               + [("testB", k, 30, "malignant") for k in range(1, 3)])


def write_glas(root: Path, size=(13, 17)) -> Path:
    rng = np.random.default_rng(2)
    base = root / "Warwick QU Dataset (Released 2016_07_08)"
    base.mkdir(parents=True)
    # the released file writes a space after some commas, in the header and in the values
    rows = ["name, patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)"]
    for part, k, patient, grade in GLAS_IMAGES:
        name = f"{part}_{k}"
        Image.fromarray(_rgb(rng, *size)).save(base / f"{name}.bmp")
        anno = np.zeros(size, np.uint8)
        anno[2:6, 3:8] = 1  # gland instances get their own label values
        anno[8:11, 9:15] = 2 + k
        Image.fromarray(anno).save(base / f"{name}_anno.bmp")
        rows.append(f"{name},{patient}, {grade}, {'adenomatous' if grade == 'malignant' else 'healthy'}")
    (base / "Grade.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def breakhis_root(tmp_path):
    return write_breakhis(tmp_path)


@pytest.fixture
def bach_root(tmp_path):
    return write_bach(tmp_path)


@pytest.fixture
def glas_root(tmp_path):
    return write_glas(tmp_path)


@pytest.fixture
def breakhis_writer():
    return write_breakhis


@pytest.fixture
def glas_images():
    return GLAS_IMAGES
