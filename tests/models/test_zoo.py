"""Every zoo model: shapes at 64x64 and 224x224 (28/32 for the small networks), train and eval mode,
batch of 1, CAM shape = input / stride, gradients of logits and CAMs reaching the input, rebuild from
config."""

from __future__ import annotations

import pytest
import torch

from advwsl.errors import InputError
from advwsl.models import WSLClassifier, create_model, list_models, model_info

WSL = list_models("wsl")
MINI = {"backbone": "resnet-mini"}


def test_registry_names():
    expected = {"cam", "gradcam", "max", "lse", "wildcat", "deepmil", "deepmil-gated", "deepmil-adapted",
                "deepmil-multi", "unet", "cw-mnist", "cw-cifar", "wrn-28-10"}
    assert expected <= set(list_models())
    assert set(WSL) == expected - {"unet", "cw-mnist", "cw-cifar", "wrn-28-10"}
    assert list_models("segmentation") == ["unet"]


def test_unknown_name_lists_models():
    with pytest.raises(InputError, match="unknown model .wildkat.; known: .*wildcat"):
        create_model("wildkat")


def test_unknown_head_option_is_explained():
    with pytest.raises(InputError, match="kmax"):
        create_model("wildcat", backbone="resnet-mini", k=3)
    with pytest.raises(InputError, match="num_classes"):
        create_model("cam", num_classes=0, backbone="resnet-mini")
    with pytest.raises(InputError, match="invalid arguments"):
        create_model("cw-mnist", widths=3)


@pytest.mark.parametrize("name", WSL)
@pytest.mark.parametrize("size,stride", [(64, 16), (64, 32), (224, 32)])
def test_wsl_shapes_modes(name, size, stride):
    backbone = "resnet18" if size == 224 and name in ("wildcat", "cam") else "resnet-mini"
    model = create_model(name, num_classes=3, backbone=backbone, stride=stride)
    assert isinstance(model, WSLClassifier) and model.stride == stride and model.num_classes == 3
    x = torch.rand(2, 3, size, size)
    for training in (True, False):
        model.train(training)
        logits, cams = model.cams(x)
        assert logits.shape == (2, 3)
        assert cams.shape == (2, 3, size // stride, size // stride)
        assert torch.isfinite(logits).all() and torch.isfinite(cams).all()
    model.eval()
    with torch.no_grad():
        one = model(x[:1])
        torch.testing.assert_close(one, model(x)[:1], atol=1e-4, rtol=1e-4)  # eval: samples independent


@pytest.mark.parametrize("name", WSL)
def test_gradients_reach_input(name):
    model = create_model(name, num_classes=2, backbone="resnet-mini", stride=16).eval()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    logits, cams = model.cams(x)
    (grad_logits,) = torch.autograd.grad(logits[:, 1].sum(), x, retain_graph=True)
    (grad_cams,) = torch.autograd.grad((cams[:, 1] ** 2).mean(), x)  # a CAM-based loss
    for grad in (grad_logits, grad_cams):
        assert torch.isfinite(grad).all()
        assert (grad.flatten(1).norm(dim=1) > 0).all()  # every sample gets a gradient


def test_resnet18_224_gradient_through_topk_head():
    model = create_model("max", num_classes=2, backbone="resnet18").eval()
    x = torch.rand(1, 3, 224, 224, requires_grad=True)
    _, cams = model.cams(x)
    cams.amax().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", WSL)
def test_rebuild_from_config(name):
    model = create_model(name, num_classes=4, backbone="resnet-mini", stride=16)
    again = create_model(**model.config)
    assert again.config == model.config
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def test_head_hyperparameters_reach_the_head():
    model = create_model("wildcat", backbone="resnet-mini", kmax=5, kmin=0.2, alpha=0.3, modalities=2)
    head = model.head
    assert (head.kmax, head.kmin, head.alpha, head.modalities) == (5, 0.2, 0.3, 2)
    assert model.config["kmax"] == 5 and model.config["modalities"] == 2
    assert create_model("lse", backbone="resnet-mini", q=0.5).head.q == 0.5
    assert create_model("deepmil-multi", backbone="resnet-mini", dropout=0.4).head.dropout == 0.4
    assert create_model("deepmil-gated", backbone="resnet-mini").head.gated
    assert create_model("deepmil-adapted", num_classes=2, backbone="resnet-mini").head.per_class


@pytest.mark.parametrize("name,size,channels", [("cw-mnist", 28, 1), ("cw-cifar", 32, 3), ("wrn-28-10", 32, 3)])
def test_small_networks(name, size, channels):
    model = create_model(name, num_classes=10)
    assert model_info(name).task == "classification"
    x = torch.rand(2, channels, size, size, requires_grad=True)
    for training in (True, False):
        model.train(training)
        assert model(x).shape == (2, 10)
    model.eval()
    assert model(x[:1]).shape == (1, 10)
    model(x).sum().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("size,width", [(64, 16), (224, 8), (70, 8)])
def test_unet_per_pixel_logits(size, width):
    model = create_model("unet", num_classes=2, base_width=width)
    x = torch.rand(2, 3, size, size, requires_grad=True)
    for training in (True, False):
        model.train(training)
        assert model(x).shape == (2, 2, size, size)
    model.eval()
    assert model(x[:1]).shape == (1, 2, size, size)
    model(x)[:, 1].mean().backward()
    assert x.grad.abs().sum() > 0


def test_bad_inputs_are_explained():
    model = create_model("cam", backbone="resnet-mini")
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(InputError, match="stride"):
        model(torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="U-Net"):
        create_model("unet", base_width=4)(torch.rand(1, 3, 8, 8))
