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


def test_cifar10_from_python_batches(tmp_path, cifar10_batches):
    """Batches in the layout of cifar-10-python.tar.gz are read as torchvision reads them (data_batch_1..5 in
    order for train, test_batch for test), without the checksums of the official archive."""
    rng = np.random.default_rng(0)
    train = [(rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), [2 * i, 2 * i + 1]) for i in range(5)]
    test = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    cifar10_batches(tmp_path, test, np.array([4, 0, 9]), train_batches=train)
    ds = get_dataset("cifar10", tmp_path, "train")
    assert len(ds) == 10 and [ds[i]["label"] for i in range(10)] == list(range(10))
    assert ds[1]["image"].shape == (3, 32, 32) and ds.classes[7] == "horse"
    # (H, W, C) pixel (r, c) of channel k is byte k * 1024 + r * 32 + c of the row
    assert torch.equal(ds[3]["image"], torch.from_numpy(train[1][0][1]).permute(2, 0, 1).float() / 255)
    test_ds = get_dataset("cifar10", tmp_path, "test")
    assert [test_ds[i]["label"] for i in range(3)] == [4, 0, 9]

    from torchvision.datasets import CIFAR10
    import torchvision.datasets.cifar as tv_cifar
    from torchvision.transforms.functional import pil_to_tensor

    with pytest.MonkeyPatch.context() as mp:  # the fixture is not the official archive: skip its checksums
        mp.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
        reference = CIFAR10(str(tmp_path), train=True)
    assert reference.classes == list(ds.classes)
    for i in range(10):
        image, label = reference[i]
        assert torch.equal(pil_to_tensor(image).float() / 255, ds[i]["image"]) and label == ds[i]["label"]


def test_cifar10_missing_or_broken_batches_are_named(tmp_path, cifar10_batches):
    with pytest.raises(DatasetError, match="cifar-10-batches-py"):
        get_dataset("cifar10", tmp_path, "test")
    cifar10_batches(tmp_path, np.zeros((2, 32, 32, 3), np.uint8), np.array([1, 2]))
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    assert len(get_dataset("cifar10", tmp_path, "test")) == 2
    with pytest.raises(DatasetError, match="data_batch_3 is missing"):
        get_dataset("cifar10", tmp_path, "train")
    (folder / "test_batch").write_bytes((folder / "data_batch_1").read_bytes()[:100])  # truncated download
    with pytest.raises(DatasetError, match="cannot read the CIFAR-10 batch .*test_batch"):
        get_dataset("cifar10", tmp_path, "test")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(DatasetError, match=r"not a CIFAR-10 batch.*\(2, 1024\)"):
        get_dataset("cifar10", tmp_path, "test")


def test_imagenet_class_folders(tmp_path):
    for wnid in ("n01440764", "n01443537"):
        d = tmp_path / "val" / wnid
        d.mkdir(parents=True)
        Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(d / "ILSVRC2012_val_00000001.JPEG")
    ds = get_dataset("imagenet", tmp_path, "test", image_size=32)
    assert len(ds) == 2 and ds[1]["label"] == 1 and ds[0]["image"].shape == (3, 32, 32)
    with pytest.raises(DatasetError, match="train/<wnid>"):
        get_dataset("imagenet", tmp_path, "train")
