"""Pascal VOC 2012 (+ augmented set) and the torchvision datasets (MNIST, CIFAR-10, ImageNet folders) on
tiny fixtures in their on-disk formats; never downloaded."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from advwsl.data import get_dataset
from advwsl.data.voc import VOCSegmentation
from advwsl.errors import DatasetError


def _palette_png(path, labels):
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)])
    im.save(path)


@pytest.fixture
def voc_root(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    rng = np.random.default_rng(0)
    ids = [f"2007_{i:06d}" for i in range(6)]
    for i, name in enumerate(ids):
        Image.fromarray((rng.random((10, 14, 3)) * 255).astype(np.uint8)).save(voc / "JPEGImages" / f"{name}.jpg")
        lab = np.zeros((10, 14), np.uint8)
        lab[2:5, 2:6] = 1 + i            # class i+1
        lab[6:9, 8:12] = 15              # person
        lab[5, :] = 255                  # void boundary
        _palette_png(voc / "SegmentationClass" / f"{name}.png", lab)
        Image.fromarray(lab, mode="L").save(voc / "SegmentationClassAug" / f"{name}.png")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[4:]) + "\n")
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:2]) + "\n")
    return tmp_path


def test_voc_multilabel_from_masks_and_augmented_train(voc_root):
    train = VOCSegmentation(voc_root, "train")
    assert train.ids == [f"2007_{i:06d}" for i in range(4)]  # augmented set minus val
    s = train[2]
    assert s["label"].shape == (20,) and s["label"].dtype == torch.float32
    assert torch.nonzero(s["label"]).flatten().tolist() == [2, 14]  # class 3 and person, not void
    assert s["mask"].dtype == torch.int64 and 255 in s["mask"].unique().tolist()
    val = get_dataset("voc", voc_root, "test")
    assert len(val) == 2 and torch.nonzero(val[1]["label"]).flatten().tolist() == [5, 14]
    assert val[0]["image"].shape == (3, 10, 14)
    lst = voc_root / "VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt"
    lst.write_text("2007_000001\n2007_000003\n")
    assert VOCSegmentation(voc_root, "train").ids == ["2007_000001", "2007_000003"]


def test_voc_missing_parts(voc_root, tmp_path):
    import shutil

    shutil.rmtree(voc_root / "VOCdevkit/VOC2012/SegmentationClassAug")
    with pytest.raises(DatasetError, match="SegmentationClassAug"):
        VOCSegmentation(voc_root, "train")
    with pytest.raises(DatasetError, match="VOCdevkit/VOC2012"):
        VOCSegmentation(tmp_path / "elsewhere")


def _idx(path, arr):
    dims = arr.shape
    code = 0x08
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, len(dims)))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        f.write(arr.astype(np.uint8).tobytes())


def test_mnist_from_raw_idx_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    ds = get_dataset("mnist", tmp_path, "test")
    assert len(ds) == 3
    s = ds[2]
    assert s["image"].shape == (1, 28, 28) and s["label"] == 2 and s["image"].max() <= 1
    with pytest.raises(DatasetError, match="MNIST/raw"):
        get_dataset("mnist", tmp_path / "none", "test")


def test_cifar10_from_python_batches(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        with open(base / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [1, 7]}, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"]}, f)
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):  # checksums of the real files
        get_dataset("cifar10", tmp_path, "test")
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)  # the fixture has other checksums
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    ds = get_dataset("cifar10", tmp_path, "train")
    assert len(ds) == 10 and ds[1]["label"] == 7 and ds[1]["image"].shape == (3, 32, 32)


def test_imagenet_class_folders(tmp_path):
    for wnid in ("n01440764", "n01443537"):
        d = tmp_path / "val" / wnid
        d.mkdir(parents=True)
        Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(d / "ILSVRC2012_val_00000001.JPEG")
    ds = get_dataset("imagenet", tmp_path, "test", image_size=32)
    assert len(ds) == 2 and ds[1]["label"] == 1 and ds[0]["image"].shape == (3, 32, 32)
    with pytest.raises(DatasetError, match="train/<wnid>"):
        get_dataset("imagenet", tmp_path, "train")
