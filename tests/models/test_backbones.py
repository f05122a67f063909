"""ResNet feature extractors: channels and strides (section 4.4.2), weight loading without network."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from advwsl.errors import InputError, ModelError
from advwsl.models import backbones
from advwsl.models.backbones import ResNetFeatures, ResNetMini, create_backbone, imagenet_weights_path


@pytest.mark.parametrize("arch,channels", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048),
                                           ("resnet101", 2048)])
def test_torchvision_backbones_shapes(arch, channels):
    net = ResNetFeatures(arch, stride=16).eval()
    assert net.out_channels == channels and net.stride == 16
    with torch.no_grad():
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, channels, 4, 4)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_stride_change_keeps_weight_shapes(arch):
    shapes = {}
    for stride in (32, 16, 8):
        net = ResNetFeatures(arch, stride=stride).eval()
        shapes[stride] = {k: v.shape for k, v in net.state_dict().items()}
        with torch.no_grad():
            assert net(torch.rand(1, 3, 96, 96)).shape[2:] == (96 // stride, 96 // stride)
    assert shapes[32] == shapes[16] == shapes[8]


@pytest.mark.parametrize("stride", [32, 16, 8])
def test_resnet_mini(stride):
    net = ResNetMini(stride=stride)
    assert net.out_channels == 128 and net.stride == stride
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 128, 64 // stride, 64 // stride)
    wide = ResNetMini((8, 8, 16, 24), (2, 1, 1, 1), stride=stride)
    assert wide(torch.rand(1, 3, 64, 64)).shape == (1, 24, 64 // stride, 64 // stride)


def test_bad_backbone_arguments():
    with pytest.raises(InputError, match="resnet-mini"):
        create_backbone("resnet19")
    with pytest.raises(InputError, match="stride"):
        create_backbone("resnet18", stride=4)
    with pytest.raises(InputError, match="widths"):
        ResNetMini(widths=(8, 16))
    with pytest.raises(InputError, match="resnet-mini"):
        create_backbone("resnet18", widths=(8, 8, 8, 8))
    with pytest.raises(ModelError, match="no pretrained"):
        create_backbone("resnet-mini", pretrained=True)


def test_local_weights_file(tmp_path):
    reference = resnet18(weights=None).eval()
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    net = ResNetFeatures("resnet18", weights=path, stride=16).eval()
    torch.testing.assert_close(net.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():  # stride 32: identical to torchvision's trunk
        trunk = ResNetFeatures("resnet18", weights=path).eval()
        pooled = trunk(x).mean(dim=(2, 3))
        torch.testing.assert_close(reference.fc(pooled), reference(x))


def test_bad_weights_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        ResNetFeatures("resnet18", weights=tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="could not read"):
        ResNetFeatures("resnet18", weights=bad)
    other = tmp_path / "mini.pth"
    torch.save(ResNetMini().state_dict(), other)
    with pytest.raises(ModelError, match="do not match torchvision resnet18"):
        ResNetFeatures("resnet18", weights=other)


def test_pretrained_offline_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, timeout=30.0):
        raise OSError("network is unreachable")

    monkeypatch.setattr(backbones, "_download", offline)
    with pytest.raises(ModelError) as info:
        ResNetFeatures("resnet18", pretrained=True)
    message = str(info.value)
    assert str(imagenet_weights_path("resnet18")) in message
    assert "weights=PATH" in message and "network is unreachable" in message


def test_pretrained_from_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(backbones, "_download", lambda *a, **k: pytest.fail("must not download"))
    reference = resnet18(weights=None)
    path = imagenet_weights_path("resnet18")
    assert path.name == "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    net = ResNetFeatures("resnet18", pretrained=True)
    torch.testing.assert_close(net.conv1.weight, reference.conv1.weight)
