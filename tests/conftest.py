"""Shared fixtures: seeded, single-threaded (the tensors are small; one thread is both faster and steadier
than several on a 2-core machine) and isolated from the user's cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

# Fixtures of module or session scope are built before the per-test fixture below: one thread from the start,
# so every fixture (a trained model, a dataset) is the same whatever OMP_NUM_THREADS says.
torch.set_num_threads(1)


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


#: CIFAR-10's class names, in the order of its labels (``batches.meta``).
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def foolbox_cifar10_images() -> tuple[np.ndarray, np.ndarray]:
    """The 20 CIFAR-10 test images foolbox ships (``foolbox/data/cifar10_<i>_<label>.png``) as uint8
    (20, 32, 32, 3) and their labels, in foolbox's order."""
    from pathlib import Path

    foolbox = pytest.importorskip("foolbox")
    files = sorted((Path(foolbox.__file__).parent / "data").glob("cifar10_*_*.png"))
    if len(files) != 20:
        pytest.skip(f"foolbox ships {len(files)} CIFAR-10 samples, expected 20")
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    labels = np.array([int(f.stem.rsplit("_", 1)[1]) for f in files])
    return images, labels


def write_cifar10_batches(root, images: np.ndarray, labels: np.ndarray, *, train_batches=None) -> None:
    """Writes ``root/cifar-10-batches-py`` as ``cifar-10-python.tar.gz`` extracts it: ``data_batch_1`` to
    ``data_batch_5`` and ``test_batch`` (pickled dicts with ``data`` uint8 (N, 3072), each row the red, green
    and blue 32 x 32 planes row-major, ``labels``, ``batch_label`` and ``filenames``) and ``batches.meta``
    (``label_names``, ``num_cases_per_batch``, ``num_vis``). ``images`` (N, 32, 32, 3) go to ``test_batch``;
    ``train_batches`` (five ``(images, labels)``) to the training batches, by default the same images dealt
    round-robin."""
    import pickle
    from pathlib import Path

    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    if train_batches is None:
        train_batches = [(images[i::5], labels[i::5]) for i in range(5)]

    def dump(name, batch_label, x, y):
        rows = np.ascontiguousarray(np.asarray(x, np.uint8).transpose(0, 3, 1, 2)).reshape(len(x), 3072)
        entry = {"batch_label": batch_label, "labels": [int(v) for v in y], "data": rows,
                 "filenames": [f"fixture_{i:05d}.png" for i in range(len(x))]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)

    for i, (x, y) in enumerate(train_batches, 1):
        dump(f"data_batch_{i}", f"training batch {i} of 5", x, y)
    dump("test_batch", "testing batch 1 of 1", images, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"num_cases_per_batch": 10000, "label_names": CIFAR10_CLASSES, "num_vis": 3072}, f, protocol=2)


@pytest.fixture
def foolbox_cifar10(tmp_path):
    """A ``--data-root`` holding foolbox's 20 real CIFAR-10 test images in the ``cifar-10-batches-py`` layout
    (see :func:`write_cifar10_batches`); returns ``(root, images (20, 32, 32, 3) uint8, labels)``."""
    images, labels = foolbox_cifar10_images()
    root = tmp_path / "cifar"
    write_cifar10_batches(root, images, labels)
    return root, images, labels


@pytest.fixture
def cifar10_batches():
    """:func:`write_cifar10_batches`, for tests that write their own CIFAR-10 batches."""
    return write_cifar10_batches
