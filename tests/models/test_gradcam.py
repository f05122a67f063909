"""Grad-CAM (eq. 1.15-1.16) against the CAM of a linear head (section 1.3.4)."""

from __future__ import annotations

import pytest
import torch

from advwsl.errors import InputError, ModelError
from advwsl.models import class_maps, create_model, grad_cam, upsample_cams
from advwsl.utils import frozen


@pytest.fixture
def cam_model():
    return create_model("cam", num_classes=3, backbone="resnet-mini", stride=16).eval()


def test_grad_cam_equals_cam_for_linear_head(cam_model):
    x = torch.rand(2, 3, 64, 64)
    logits, cams = cam_model.cams(x)
    g_logits, g_cams = grad_cam(cam_model, x, relu=False)
    hw = cams.shape[2] * cams.shape[3]
    bias = cam_model.head.classifier.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(g_logits, logits.detach())
    torch.testing.assert_close(g_cams * hw + bias, cams.detach(), atol=1e-5, rtol=1e-4)
    # with the ReLU of eq. 1.15: same localization as the bias-free CAM
    _, relu_cams = grad_cam(cam_model, x)
    torch.testing.assert_close(relu_cams * hw, torch.relu(cams.detach() - bias), atol=1e-5, rtol=1e-4)


def test_grad_cam_selected_classes_and_batching(cam_model):
    x = torch.rand(3, 3, 64, 64)
    _, all_maps = grad_cam(cam_model, x)
    classes = torch.tensor([2, 0, 1])
    _, some = grad_cam(cam_model, x, classes=classes)
    assert some.shape == (3, 1, 4, 4)
    torch.testing.assert_close(some[:, 0], all_maps[torch.arange(3), classes])
    _, single = grad_cam(cam_model, x[1:2], classes=classes[1:2])
    torch.testing.assert_close(single, some[1:2], atol=1e-6, rtol=1e-5)


def test_grad_cam_differentiable_and_leaves_model_alone():
    model = create_model("wildcat", num_classes=2, backbone="resnet-mini", stride=16).eval()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    _, maps = grad_cam(model, x, classes=torch.tensor([0, 1]), create_graph=True)
    maps.sum().backward()
    assert x.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    _, maps = grad_cam(model, x.detach())
    assert not maps.requires_grad
    assert all(p.grad is None for p in model.parameters()) and not model.training
    with frozen(model), torch.no_grad():  # frozen model, no grad mode: still works
        _, frozen_maps = grad_cam(model, x.detach())
    torch.testing.assert_close(frozen_maps, maps)


def test_grad_cam_small_network_and_errors():
    model = create_model("cw-mnist").eval()
    _, maps = grad_cam(model, torch.rand(2, 1, 28, 28))  # layer = model.features
    assert maps.shape == (2, 10, 4, 4)
    wrn = create_model("wrn-28-10")
    with pytest.raises(ModelError, match="layer="):
        grad_cam(wrn, torch.rand(1, 3, 32, 32))
    with pytest.raises(InputError, match="class indices"):
        grad_cam(model, torch.rand(2, 1, 28, 28), classes=torch.tensor([0, 10]))


def test_grad_cam_normalized_and_upsampled_equals_the_cam_of_a_linear_head(cam_model):
    """Grad-CAM before the ReLU is (M_c - b_c) / (hw): a positive affine map of the CAM, which bilinear
    upsampling (weights summing to one) and min-max normalization both undo."""
    x = torch.rand(2, 3, 64, 64)
    _, cams = cam_model.cams(x)
    _, maps = grad_cam(cam_model, x, relu=False, normalize=True, size=x.shape[-2:])
    assert maps.shape == (2, 3, 64, 64)
    expected = torch.stack([class_maps(cams.detach(), torch.full((2,), c), size=(64, 64)) for c in range(3)], 1)
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-4)


def test_grad_cam_normalization_and_upsampling_properties(cam_model):
    x = torch.rand(3, 3, 64, 64)
    _, raw = grad_cam(cam_model, x)
    _, norm = grad_cam(cam_model, x, normalize=True)
    flat = norm.flatten(2)
    assert torch.all((flat.amax(2) == 1) | (flat.amax(2) == 0)) and torch.all(flat.amin(2) == 0)
    # a per-map increasing transform: the order of the cells is kept
    assert torch.equal(raw.flatten(2).argmax(2), flat.argmax(2))
    _, up = grad_cam(cam_model, x, classes=torch.tensor([0, 1, 2]), size=(40, 48))
    assert up.shape == (3, 1, 40, 48)
    torch.testing.assert_close(up, upsample_cams(grad_cam(cam_model, x, classes=torch.tensor([0, 1, 2]))[1], (40, 48)))
    torch.testing.assert_close(up.mean(dim=(2, 3)), raw[torch.arange(3), torch.tensor([0, 1, 2])].mean(dim=(1, 2))[:, None],
                               atol=1e-6, rtol=1e-4)  # bilinear upsampling by a whole factor keeps the mean
    # the raw maps stay differentiable for attacks, normalized or not
    xg = x.clone().requires_grad_()
    _, maps = grad_cam(cam_model, xg, classes=torch.tensor([0, 1, 2]), create_graph=True, normalize=True, size=64)
    (grad,) = torch.autograd.grad(maps.sum(), xg)
    assert grad.abs().sum() > 0


def test_grad_cam_view_keeps_the_models_mode():
    """Regression: the view of an eval-mode model was a fresh module in train mode, so every attack on it warned
    'the model is in train mode'."""
    from advwsl.models.gradcam import with_grad_cam
    model = create_model("cw-mnist", input_size=16)
    x = torch.rand(1, 1, 16, 16)
    assert not with_grad_cam(model.eval(), x).training
    assert with_grad_cam(model.train(), x).training
