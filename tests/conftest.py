"""Shared fixtures: seeded, single-threaded (the tensors are small; one thread is both faster and steadier
than several on a 2-core machine) and isolated from the user's cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _seed_and_isolate(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # never write into the user's cache from tests
    monkeypatch.setenv("ADVWSL_HOME", str(tmp_path / "advwsl_home"))
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def voc_layout():
    """Writes a tiny Pascal VOC 2012 tree (JPEGImages, SegmentationClass(Aug), ImageSets/Segmentation/val.txt)
    of ``n`` images with two objects each and a void line; returns its root."""

    def write(root, n=6, size=(40, 48)):
        voc = root / "VOCdevkit" / "VOC2012"
        for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
            (voc / d).mkdir(parents=True)
        rng = np.random.default_rng(0)
        ids = [f"2007_{i:06d}" for i in range(n)]
        for i, name in enumerate(ids):
            image = (rng.random((*size, 3)) * 255).astype(np.uint8)
            Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg")
            lab = np.zeros(size, np.uint8)
            lab[5:20, 5:25] = 1 + i % 3
            lab[25:35, 30:45] = 15
            lab[22, :] = 255
            Image.fromarray(lab, mode="L").save(voc / "SegmentationClass" / f"{name}.png")
            Image.fromarray(lab, mode="L").save(voc / "SegmentationClassAug" / f"{name}.png")
        (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[4:]) + "\n")
        return root

    return write
