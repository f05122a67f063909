"""Checkpoints: safetensors + JSON sidecar round trip, and clear errors for every broken case."""

from __future__ import annotations

import json

import pytest
import torch

from advwsl.errors import CheckpointError, InputError
from advwsl.models import checkpoint_info, create_model, list_models, load_model, save_model

SMALL = {"cw-mnist": (1, 28), "cw-cifar": (3, 32), "unet": (3, 32)}


def _build(name):
    if name in list_models("wsl"):
        return create_model(name, num_classes=3, backbone="resnet-mini", stride=16), (3, 64)
    if name == "unet":
        return create_model(name, num_classes=2, base_width=8, depth=3), SMALL[name]
    return create_model(name, num_classes=10), SMALL[name]


@pytest.mark.parametrize("name", [n for n in list_models() if n != "wrn-28-10"])
def test_round_trip_identical(tmp_path, name):
    model, (channels, size) = _build(name)
    model.train()
    x = torch.rand(2, channels, size, size)
    model(x)  # update batch-norm statistics so that they differ from the initial ones
    model.eval()
    classes = [f"class{i}" for i in range(getattr(model, "num_classes", 2))]
    path = save_model(model, tmp_path / "ckpt", metadata={"classes": classes, "metrics": {"accuracy": 0.9},
                                                          "dataset": "synthetic", "training": {"epochs": 1}})
    assert path == tmp_path / "ckpt.safetensors" and (tmp_path / "ckpt.json").is_file()
    loaded = load_model(tmp_path / "ckpt")
    assert not loaded.training and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        if hasattr(model, "cams"):
            assert torch.equal(loaded.cams(x)[1], model.cams(x)[1])
    info = checkpoint_info(tmp_path / "ckpt.json")
    assert info["architecture"] == name and info["classes"] == classes and info["dataset"] == "synthetic"
    assert info["metrics"] == {"accuracy": 0.9} and info["training"] == {"epochs": 1}
    assert "mean" in info["normalization"] and "sha256" in info


def test_paths_and_overwrite(tmp_path):
    model = create_model("cam", backbone="resnet-mini")
    save_model(model, tmp_path / "m.safetensors")
    assert (tmp_path / "m.json").is_file()
    before = (tmp_path / "m.safetensors").read_bytes()
    other = create_model("cam", backbone="resnet-mini")
    with pytest.raises(CheckpointError, match="overwrite=True"):
        save_model(other, tmp_path / "m")
    assert (tmp_path / "m.safetensors").read_bytes() == before
    save_model(other, tmp_path / "m", overwrite=True)
    assert (tmp_path / "m.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]  # no temporaries left


def test_missing_sidecar_and_weights(tmp_path):
    model = create_model("max", backbone="resnet-mini")
    save_model(model, tmp_path / "m")
    (tmp_path / "m.json").unlink()
    with pytest.raises(CheckpointError, match="sidecar .* is missing"):
        load_model(tmp_path / "m")
    save_model(model, tmp_path / "n")
    (tmp_path / "n.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights .* are missing"):
        load_model(tmp_path / "n.json")


def test_truncated_file(tmp_path):
    save_model(create_model("lse", backbone="resnet-mini"), tmp_path / "m")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "m")
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(tmp_path / "m", verify=False)
    (tmp_path / "m.json").write_text('{"format": "advwsl-checkpo')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(tmp_path / "m")


def test_other_architecture(tmp_path):
    save_model(create_model("wildcat", num_classes=2, backbone="resnet-mini"), tmp_path / "w")
    with pytest.raises(CheckpointError, match="holds a 'wildcat' model, not 'cam'"):
        load_model(tmp_path / "w", architecture="cam")
    # a sidecar edited to claim another architecture than the weights hold: caught by its architecture hash
    info = json.loads((tmp_path / "w.json").read_text())
    info["architecture"] = "deepmil"
    (tmp_path / "w.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="were edited after the model was saved"):
        load_model(tmp_path / "w")
    # without that hash (a sidecar written by hand), building or loading the weights fails instead
    del info["architecture_sha256"]
    (tmp_path / "w.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="cannot build: DeepMILHead has no option"):
        load_model(tmp_path / "w")
    for key in ("kmax", "kmin", "alpha", "modalities"):
        del info["kwargs"][key]
    (tmp_path / "w.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="another architecture"):
        load_model(tmp_path / "w")
    info["architecture"] = "vgg16"
    (tmp_path / "w.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="available: "):
        load_model(tmp_path / "w")


@pytest.mark.parametrize("field, value", [("kwargs.stride", 16), ("architecture", "max"), ("classes", ["a", "c"]),
                                          ("kwargs.kmax", 0.3)])
def test_edited_sidecar_fails_to_load(tmp_path, field, value):
    """The sha256 covers the weights; the architecture hash covers what the weights mean (head, stride, classes):
    an edit that would silently change the outputs is refused."""
    model = create_model("wildcat", num_classes=2, backbone="resnet-mini")
    save_model(model, tmp_path / "w", metadata={"classes": ["a", "b"]})
    info = json.loads((tmp_path / "w.json").read_text())
    where, _, key = field.rpartition(".")
    (info[where] if where else info)[key] = value
    (tmp_path / "w.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="were edited after the model was saved"):
        load_model(tmp_path / "w")


def test_bad_metadata(tmp_path):
    model = create_model("cam", num_classes=2, backbone="resnet-mini")
    with pytest.raises(InputError, match="reserved"):
        save_model(model, tmp_path / "a", metadata={"architecture": "x"})
    with pytest.raises(InputError, match="3 names"):
        save_model(model, tmp_path / "b", metadata={"classes": ["a", "b", "c"]})
    with pytest.raises(InputError, match="cannot be stored"):
        save_model(model, tmp_path / "c", metadata={"training": {"optimizer": object()}})
    with pytest.raises(InputError, match="create_model"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "d")
    assert not any(tmp_path.iterdir())
