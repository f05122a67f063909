"""The built-in demo models: recipe for every WSL zoo name, cache location and key, train once then reuse,
finishing an interrupted training."""

from __future__ import annotations

import pytest
import torch

from advwsl.pretrained import demo
from advwsl.pretrained import list_pretrained, resolve_model
from advwsl.errors import ConfigError, InputError
from advwsl.models import checkpoint_paths, create_model, list_models
from advwsl.training import TrainConfig

# a recipe small enough to train in seconds (the real one is exercised by the end-to-end CLI test)
TINY = {"epochs": 1, "batch_size": 16, "dataset_kwargs": {"size": 32, "n_trainval": 40, "n_test": 8}}


def test_every_wsl_model_has_a_demo_recipe():
    names = list_models("wsl")
    assert {"cam", "max", "lse", "wildcat", "deepmil", "deepmil-multi"} <= set(names)
    for name in names:
        config = demo.demo_config(name)
        TrainConfig.from_dict(config)  # valid training options
        model = create_model(name, num_classes=2, backbone=config["backbone"], stride=config["stride"])
        logits, cams = model.eval().cams(torch.rand(2, 3, 64, 64))
        assert logits.shape == (2, 2) and cams.shape == (2, 2, 8, 8)


def test_unknown_name_lists_the_wsl_models():
    with pytest.raises(InputError, match="wildcat") as info:
        demo.demo_config("resnet-9000")
    assert "resnet-9000" in str(info.value) and "deepmil-multi" in str(info.value)
    with pytest.raises(InputError, match="weakly supervised"):
        demo.demo_config("cw-mnist")


def test_cache_location_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVWSL_HOME", str(tmp_path / "home"))
    stem = demo.demo_checkpoint("wildcat")
    assert stem.parent == tmp_path / "home" / "models" / "demo"
    assert stem.name.startswith("wildcat-")
    assert demo.demo_checkpoint("wildcat") == stem
    assert demo.demo_checkpoint("cam") != stem
    assert demo.demo_checkpoint("wildcat", epochs=3) != stem
    assert demo.demo_checkpoint("wildcat", progress=False) == stem  # display options are not part of the key
    monkeypatch.delenv("ADVWSL_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.demo_checkpoint("wildcat").parent == tmp_path / "xdg" / "advwsl" / "models" / "demo"


def test_trained_once_then_reused(monkeypatch):
    notices = []
    assert not demo.is_demo_cached("wildcat", **TINY)
    model, info = demo.demo_model("wildcat", progress=False, log=notices.append, **TINY)
    assert demo.is_demo_cached("wildcat", **TINY)
    assert any("training the demo wildcat model" in n for n in notices)
    assert info["demo"] is True and info["classes"] == ["normal", "malignant"]
    test = info["metrics"]["test"]
    assert 0 <= test["accuracy"] <= 1 and 0 <= test["cam_dice"] <= 1 and test["n"] == 8
    assert not model.training

    def no_training(*args, **kwargs):
        raise AssertionError("a cached demo model must not be trained again")

    monkeypatch.setattr("advwsl.pretrained.demo.fit", no_training)
    again, _ = demo.demo_model("wildcat", progress=False, **TINY)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


def test_finished_training_is_not_repeated():
    """A training that finished but whose checkpoint was not cached (interrupted at the end) is reused."""
    demo.demo_model("cam", progress=False, **TINY)
    stem = demo.demo_checkpoint("cam", **TINY)
    metrics = stem.with_name(stem.name + ".training") / "metrics.csv"
    before = metrics.read_text()
    for path in checkpoint_paths(stem):
        path.unlink()
    _, info = demo.demo_model("cam", progress=False, **TINY)
    assert demo.is_demo_cached("cam", **TINY) and info["architecture"] == "cam"
    assert metrics.read_text() == before  # no epoch was trained again


def test_demo_data_has_masks():
    images, labels, masks, classes = demo.demo_data("test", size=32, n_test=8)
    assert images.shape == (8, 3, 32, 32) and labels.shape == (8,) and masks.shape == (8, 32, 32)
    assert classes == ["normal", "malignant"]
    assert torch.all(masks[labels == 0] == 0) and torch.all(masks[labels == 1].flatten(1).amax(1) == 1)


def test_recipe_overrides_from_the_environment(monkeypatch):
    monkeypatch.setenv(demo.RECIPE_ENV, '{"epochs": 2, "dataset_kwargs": {"n_test": 16}}')
    config = demo.demo_config("wildcat")
    assert config["epochs"] == 2 and config["dataset_kwargs"]["n_test"] == 16
    assert config["dataset_kwargs"]["size"] == demo.DEMO_DATASET["size"]
    assert demo.demo_config("wildcat", epochs=3)["epochs"] == 3  # explicit arguments win
    monkeypatch.setenv(demo.RECIPE_ENV, "{epochs: 2")
    with pytest.raises(ConfigError, match="ADVWSL_DEMO_RECIPE must be a JSON object"):
        demo.demo_config("wildcat")


def test_every_wsl_model_is_a_builtin_the_resolver_knows(monkeypatch):
    import json

    assert {"digits-cnn", "wildcat", "cam", "deepmil-multi"} <= set(list_pretrained())
    monkeypatch.setenv(demo.RECIPE_ENV, json.dumps(TINY))
    resolved = resolve_model("max", progress=False)
    assert resolved.kind == "builtin" and resolved.has_cams and resolved.classes == ["normal", "malignant"]
    assert resolved.dataset == "synthetic" and resolved.dataset_kwargs["size"] == 32
    assert resolved.checkpoint == str(demo.demo_checkpoint("max"))
