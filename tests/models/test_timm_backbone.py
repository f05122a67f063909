"""timm models as WSL backbones (two non-ResNet families): shapes and strides, gradients and differentiable CAMs,
checkpoint round trip, an attack, local weights (whole-model and backbone state dicts, .pth and .safetensors),
pretrained weights from the local caches only, and the errors."""

from __future__ import annotations

import huggingface_hub
import pytest
import timm
import torch
from safetensors.torch import save_file

from advwsl.attacks import run_attack
from advwsl.errors import InputError, ModelError
from advwsl.models import (ResNetFeatures, TimmFeatures, create_backbone, create_model, load_model, save_model,
                           timm_weights_paths)

FAMILIES = ["efficientnet_b0", "timm:convnext_atto"]


@pytest.mark.parametrize("name", FAMILIES)
def test_timm_wsl_model_forward_backward_cams(name):
    model = create_model("wildcat", num_classes=3, backbone=name, stride=16)
    backbone = model.backbone
    assert isinstance(backbone, TimmFeatures) and backbone.stride == 16 and backbone.out_channels == 320
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits, cams = model.cams(x)
    assert logits.shape == (2, 3) and cams.shape == (2, 3, 4, 4)
    (grad,) = torch.autograd.grad(cams[:, 1].sum(), x)  # the CAMs are differentiable w.r.t. the input
    assert grad.abs().sum() > 0
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 2])).backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert next(model.backbone.parameters()).grad is not None


@pytest.mark.parametrize("stride", [32, 8])
def test_timm_strides(stride):
    net = create_backbone("mobilenetv3_small_050", stride=stride).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, net.out_channels, 64 // stride, 64 // stride)


def test_checkpoint_round_trip_and_attack(tmp_path):
    model = create_model("cam", num_classes=2, backbone="timm:convnext_atto", stride=32).eval()
    save_model(model, tmp_path / "m", metadata={"classes": ["a", "b"]})
    loaded = load_model(tmp_path / "m")
    assert loaded.config["backbone"] == "timm:convnext_atto"
    x = torch.randint(0, 256, (4, 3, 32, 32)) / 255.0  # 8-bit images
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    labels = loaded(x).argmax(1)
    result = run_attack(loaded, x, labels, attack="ddn", attack_kwargs={"steps": 5})
    summary = result.summary()
    assert summary["n_samples"] == 4 and summary["clean_accuracy"] == 1.0
    assert summary["grads_per_sample"] <= 5 and 0.0 <= summary["success"] <= 1.0


def test_names_registered_first():
    assert isinstance(create_backbone("resnet18"), ResNetFeatures)  # torchvision's, as before
    assert isinstance(create_backbone("timm:resnet18"), TimmFeatures)
    with pytest.raises(InputError, match="timm"):
        create_backbone("no_such_net")
    with pytest.raises(InputError, match="not a timm model"):
        create_backbone("timm:no_such_net")


def test_unsupported_stride_is_a_model_error():
    with pytest.raises(ModelError, match="stride 16, not 32"):
        create_backbone("timm:vit_tiny_patch16_224", stride=32)
    with pytest.raises(ModelError, match="cannot build"):
        create_backbone("timm:vit_tiny_patch16_224", stride=8)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_of_the_whole_timm_model(tmp_path, suffix):
    full = timm.create_model("convnext_atto").eval()
    state = {k: v.contiguous() for k, v in full.state_dict().items()}
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model = create_model("cam", num_classes=2, backbone="convnext_atto", weights=str(path)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():  # the trunk equals timm's own forward_features
        torch.testing.assert_close(model.backbone(x), full.forward_features(x))
    assert "weights" not in model.config  # init-only: the checkpoint holds the weights


def test_local_weights_of_the_backbone_and_mismatches(tmp_path):
    net = create_backbone("efficientnet_b0")
    path = tmp_path / "bb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    again = create_backbone("efficientnet_b0", weights=path)
    torch.testing.assert_close(again.net.conv_stem.weight, net.net.conv_stem.weight)
    other = tmp_path / "other.pth"
    torch.save(create_backbone("mobilenetv3_small_050").state_dict(), other)
    with pytest.raises(ModelError, match=r"missing key\(s\).*unexpected key\(s\)") as info:
        create_backbone("efficientnet_b0", weights=other)
    assert "efficientnet_b0" in str(info.value) and str(other) in str(info.value)
    with pytest.raises(ModelError, match="does not exist"):
        create_backbone("efficientnet_b0", weights=tmp_path / "missing.safetensors")


def test_pretrained_from_the_torch_hub_folder_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    target = timm_weights_paths("efficientnet_b0")[-1]
    assert target.parent == tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(ModelError, match="not found in the local caches") as info:
        create_backbone("efficientnet_b0", pretrained=True)
    assert str(target) in str(info.value) and "huggingface.co" not in str(info.value)  # the URL of the file
    full = timm.create_model("efficientnet_b0")
    target.parent.mkdir(parents=True)
    torch.save(full.state_dict(), target)
    net = create_backbone("efficientnet_b0", pretrained=True)
    torch.testing.assert_close(net.net.blocks[6][0].conv_pw.weight, full.blocks[6][0].conv_pw.weight)


def test_pretrained_from_the_hugging_face_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    repo = tmp_path / "hf" / "models--timm--convnext_atto.d2_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    full = timm.create_model("convnext_atto")
    save_file({k: v.contiguous() for k, v in full.state_dict().items()},
              str(repo / "snapshots" / "abc123" / "model.safetensors"))
    net = create_backbone("timm:convnext_atto", pretrained=True)
    torch.testing.assert_close(net.net.stem_0.weight, full.stem[0].weight)


def test_no_pretrained_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="pretrained=False"):
        create_backbone("timm:convnext_atto", pretrained=True)
