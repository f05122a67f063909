"""The training-set fractions of section 2.1.3.1 (Figures 2.8 / 2.9), the crop size of chapter 4 and the
GlaS-like synthetic stand-in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advwsl.data import get_dataset, stratified_subset, training_transform
from advwsl.data.synthetic import SyntheticHistology
from advwsl.data.transforms import RandomCrop
from advwsl.errors import ConfigError, InputError
from advwsl.training import TrainConfig, build_datasets


class _Labelled(torch.utils.data.Dataset):
    classes = ("a", "b", "c", "d")
    region_classes = (1, 2)

    def __init__(self, per_class=40):
        self.labels = np.repeat(np.arange(4), per_class)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": torch.zeros(3, 2, 2), "label": int(self.labels[i]), "index": i}


@pytest.mark.parametrize("fraction,per_class", [(0.1, 4), (0.25, 10), (0.5, 20), (0.75, 30), (1.0, 40)])
def test_stratified_fractions_keep_the_class_balance(fraction, per_class):
    # BACH: 40 training images per class -> 4 / 10 / 20 / 30 / 40 (section 2.1.3.1)
    sub = stratified_subset(_Labelled(), fraction, seed=3)
    assert np.bincount(sub.labels).tolist() == [per_class] * 4
    assert [sub[i]["label"] for i in range(len(sub))] == sub.labels.tolist()
    assert sub.classes == _Labelled.classes and sub.region_classes == (1, 2)
    again = stratified_subset(_Labelled(), fraction, seed=3)
    assert np.array_equal(sub.indices, again.indices)


def test_fractions_are_seeded_and_nested_sets_differ_by_seed():
    a, b = stratified_subset(_Labelled(), 0.25, seed=0), stratified_subset(_Labelled(), 0.25, seed=1)
    assert not np.array_equal(a.indices, b.indices)
    assert len(stratified_subset(_Labelled(per_class=3), 0.01, seed=0)) == 4  # at least one per class
    with pytest.raises(InputError, match=r"\(0, 1\]"):
        stratified_subset(_Labelled(), 0.0)
    with pytest.raises(ConfigError, match="train.fraction"):
        TrainConfig(train_fraction=1.5)


def test_train_fraction_in_the_recipe_reduces_only_the_training_split():
    kw = {"size": 16, "n_trainval": 100, "n_test": 20}
    full = build_datasets(TrainConfig(dataset_kwargs=kw), 0)
    part = build_datasets(TrainConfig(dataset_kwargs=kw, train_fraction=0.25), 0)
    assert len(part[0]) == 20 and len(full[0]) == 80
    assert len(part[1]) == len(full[1]) and len(part[2]) == len(full[2])
    assert np.bincount(part[0].labels).tolist() == [10, 10]


def test_crop_size_replaces_the_dataset_crop():
    glas = training_transform("glas", crop_size=448)
    crops = [t for t in glas.transforms if isinstance(t, RandomCrop)]
    assert [c.size for c in crops] == [448]
    with pytest.raises(ConfigError, match="whole images"):
        training_transform("synthetic", crop_size=32)


def test_glas_like_stand_in_has_a_lesion_of_its_class_in_every_tile():
    ds = SyntheticHistology("test", size=32, n_test=12, num_classes=2, lesions_only=True)
    assert ds.classes == ("benign", "malignant") and ds.region_classes == (0, 1)
    _, labels, masks = ds.tensors()
    assert set(labels.tolist()) == {0, 1} and bool((masks.flatten(1).sum(1) > 0).all())
    assert SyntheticHistology("test", n_test=4, size=16, num_classes=3).region_classes == (1, 2)
    with pytest.raises(InputError, match="lesions_only"):
        SyntheticHistology("test", num_classes=4, lesions_only=True)
    assert get_dataset("synthetic", split="test", size=16, n_test=4, lesions_only=True).classes[0] == "benign"


def test_glas_whole_images_of_several_sizes_are_evaluated_one_at_a_time(glas_root, tmp_path):
    from PIL import Image

    from advwsl.training import fit

    base = glas_root / "Warwick QU Dataset (Released 2016_07_08)"
    for name in ("testA_1", "testB_2", "train_3"):  # GlaS images come in several sizes (Table 2.3)
        for suffix, resample in (("", Image.BILINEAR), ("_anno", Image.NEAREST)):
            path = base / f"{name}{suffix}.bmp"
            Image.open(path).resize((21, 15), resample).save(path)
    cfg = TrainConfig(dataset="glas", data_root=str(glas_root), backbone="resnet-mini", stride=8, crop_size=16,
                      epochs=1, batch_size=4, progress=False, model="cam")
    result = fit(cfg, tmp_path / "run")
    assert result.test["n_images"] == 6 and 0 <= result.test["dice"] <= 1
    assert "dice_combined" in result.test  # GlaS has two gland classes: eq. 4.14 beside the binary Dice
