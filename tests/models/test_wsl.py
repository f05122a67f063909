"""WSLClassifier helpers: bilinear upsampling of CAMs and test-time augmentation (section 3.4.2)."""

from __future__ import annotations

import pytest
import torch

from advwsl.errors import InputError
from advwsl.models import create_model, tta_cams, upsample_cams
from advwsl.models.normalize import IMAGENET_MEAN


def test_upsample_cams():
    cams = torch.randn(2, 3, 4, 4, requires_grad=True)
    up = upsample_cams(cams, 64)
    assert up.shape == (2, 3, 64, 64)
    torch.testing.assert_close(up.mean(dim=(2, 3)), cams.mean(dim=(2, 3)), atol=0.05, rtol=0)
    up.sum().backward()
    assert cams.grad is not None
    const = torch.full((1, 1, 3, 5), 2.5)
    torch.testing.assert_close(upsample_cams(const, (30, 50)), torch.full((1, 1, 30, 50), 2.5))
    assert upsample_cams(const, (3, 5)) is const
    with pytest.raises(InputError):
        upsample_cams(torch.zeros(3, 4), 8)


def test_normalization_is_first_module():
    model = create_model("wildcat", backbone="resnet-mini").eval()
    assert list(model.children())[0] is model.normalize
    torch.testing.assert_close(model.normalize.mean.flatten(), torch.tensor(IMAGENET_MEAN))
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model.features(x), model.backbone(model.normalize(x)))


def test_tta_single_view_is_upsampled_cams():
    model = create_model("cam", num_classes=2, backbone="resnet-mini", stride=16).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        logits, cams = tta_cams(model, x, scales=(1.0,), flip=False)
        ref_logits, ref_cams = model.cams(x)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(cams, upsample_cams(ref_cams, 64))


def test_tta_is_flip_equivariant():
    model = create_model("wildcat", num_classes=3, backbone="resnet-mini", stride=16).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        logits, cams = tta_cams(model, x)
        logits_f, cams_f = tta_cams(model, x.flip(3))
    assert cams.shape == (1, 3, 64, 64) and logits.shape == (1, 3)
    torch.testing.assert_close(logits_f, logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cams_f, cams.flip(3), atol=1e-4, rtol=1e-4)


def test_tta_errors():
    with pytest.raises(InputError, match="cams"):
        tta_cams(create_model("cw-mnist"), torch.rand(1, 1, 28, 28))
    with pytest.raises(InputError, match="scales"):
        tta_cams(create_model("cam", backbone="resnet-mini"), torch.rand(1, 3, 64, 64), scales=(0.0,))
