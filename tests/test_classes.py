"""Classes by name: :func:`advwsl.classes.match_classes` refuses a model/data pair whose class names, order or
number differ (or returns the permutation by name when asked), and every dataset exposes its class names
(:func:`advwsl.data.base.dataset_classes`), through subsets and concatenations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Subset

from advwsl.classes import ClassMismatch, match_classes
from advwsl.data.base import dataset_classes
from advwsl.data.folds import LabelledSubset
from advwsl.data.registry import get_dataset, get_dataset_spec, list_datasets
from advwsl.errors import ConfigError, DatasetError

MODEL = ("normal", "malignant")  # the demo model's classes, in its logits' order


def _folder(root, classes=("normal", "malignant"), n=5):
    """An ImageFolder layout: ``root/<class>/<i>.png``; the images of class k are bright in channel k."""
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            image = np.zeros((8, 8, 3), np.uint8)
            image[..., k] = 200 + i
            Image.fromarray(image).save(root / name / f"{i}.png")
    return root


def test_the_same_classes_in_the_same_order_match():
    assert match_classes(MODEL, list(MODEL)) is None
    assert match_classes(["0", "1", "2"], ("0", "1", "2"), remap=True) is None
    assert match_classes([0, 1, 2], ("0", "1", "2")) is None  # indices recorded as numbers: the same names


def test_a_folder_dataset_sorted_the_other_way_is_refused_or_remapped(tmp_path):
    data = get_dataset("folder", _folder(tmp_path), "test")
    assert dataset_classes(data) == ("malignant", "normal")  # sorted folder names: the other way round
    with pytest.raises(ClassMismatch, match="same names in another order.*--remap-classes") as info:
        match_classes(MODEL, dataset_classes(data), option="--remap-classes")
    assert isinstance(info.value, ConfigError)
    index = match_classes(MODEL, dataset_classes(data), remap=True)
    assert index == [1, 0]
    for i in range(len(data)):
        sample = data[i]
        true = int(sample["image"].flatten(1).mean(1).argmax())  # the channel is the class in MODEL's order
        assert torch.as_tensor(index)[sample["label"]] == true
        assert MODEL[index[sample["label"]]] == dataset_classes(data)[sample["label"]]


def test_a_permutation_of_more_classes_maps_every_label_to_its_name():
    model = ("a", "b", "c", "d", "e")
    data = ("d", "a", "e", "c", "b")
    index = match_classes(model, data, remap=True)
    assert [model[j] for j in index] == list(data)


@pytest.mark.parametrize("remap", [False, True])
def test_different_numbers_of_classes_are_refused(remap):
    with pytest.raises(ClassMismatch, match="the model has 5 classes .* but the data has 2"):
        match_classes(("a", "b", "c", "d", "e"), MODEL, remap=remap)
    with pytest.raises(ClassMismatch, match="the model has 5 classes but the data has 2"):
        match_classes(5, 2, remap=remap)
    with pytest.raises(ClassMismatch, match="has 10 classes"):
        match_classes(10, MODEL)


@pytest.mark.parametrize("remap", [False, True])
def test_other_names_are_refused(remap):
    with pytest.raises(ClassMismatch, match=r"only the model has \['malignant'\], only the data \['tumor'\]"):
        match_classes(MODEL, ("normal", "tumor"), remap=remap)


def test_what_is_unknown_is_not_checked_and_bad_lists_are_refused():
    assert match_classes(None, MODEL) is None and match_classes(MODEL, None) is None
    assert match_classes(2, MODEL) is None  # only the count is known, and it agrees
    with pytest.raises(ClassMismatch, match="more than once"):
        match_classes(("a", "a"), ("a", "b"))
    with pytest.raises(ClassMismatch, match="list of names"):
        match_classes("normal,malignant", MODEL)


def test_dataset_classes_see_through_subsets_and_concatenations(tmp_path):
    data = get_dataset("folder", _folder(tmp_path), "train")
    for wrapped in (LabelledSubset(data, [0, 1]), Subset(data, [0]), ConcatDataset([data, Subset(data, [1])])):
        assert dataset_classes(wrapped) == ("malignant", "normal")
    assert dataset_classes(torch.utils.data.TensorDataset(torch.zeros(2))) is None
    other = get_dataset("synthetic", None, "test", size=32, n_test=4, num_classes=3)
    with pytest.raises(DatasetError, match="different classes"):
        dataset_classes(ConcatDataset([data, other]))


@pytest.mark.parametrize("name", [n for n in list_datasets() if not get_dataset_spec(n).needs_root])
def test_every_dataset_without_a_root_exposes_its_classes(name):
    options = {"synthetic": {"size": 32, "n_test": 4, "num_classes": 3}}.get(name, {})
    data = get_dataset(name, None, "test", **options)
    classes = dataset_classes(data)
    labels = np.asarray([data[i]["label"] for i in range(min(len(data), 50))])
    assert classes is not None and len(classes) > labels.max()
    spec = get_dataset_spec(name).classes
    assert spec is None or classes == tuple(spec)


def test_cifar10_exposes_the_names_of_its_meta_file(tmp_path, cifar10_batches):
    cifar10_batches(tmp_path, np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 9]))
    data = get_dataset("cifar10", tmp_path, "test")
    assert dataset_classes(data) == get_dataset_spec("cifar10").classes
    assert match_classes(get_dataset_spec("cifar10").classes, dataset_classes(data)) is None


def test_checkpoints_record_class_names_for_the_match(tmp_path):
    from advwsl.models import create_model, save_model
    from advwsl.models.checkpoints import checkpoint_classes, checkpoint_info

    model = create_model("cw-mnist", input_size=16, num_classes=2)
    save_model(model, tmp_path / "named", metadata={"classes": list(MODEL)})
    save_model(model, tmp_path / "unnamed")
    assert checkpoint_classes(checkpoint_info(tmp_path / "named")) == MODEL
    assert checkpoint_classes(checkpoint_info(tmp_path / "unnamed")) == 2  # only the count is known
    with pytest.raises(ClassMismatch, match="another order"):
        match_classes(checkpoint_classes(checkpoint_info(tmp_path / "named")), ("malignant", "normal"))
    with pytest.raises(ClassMismatch, match="the model has 2 classes but the data has 10"):
        match_classes(checkpoint_classes(checkpoint_info(tmp_path / "unnamed")), 10)
    from advwsl.errors import InputError

    for bad, message in ((["a", "a"], "twice"), ("ab", "list of class names"), (["a"], "1 names")):
        with pytest.raises(InputError, match=message):
            save_model(model, tmp_path / "bad", metadata={"classes": bad})
