"""Feature extractors for the weakly supervised models: ResNet-18/34/50/101 without pooling nor fc layer
(the reference uses an ImageNet-pretrained ResNet-18, section 2.1.3.1), with a total stride of 32 or 16
(section 4.4.2: the stride of the first convolution of the last stage is set to 1, which keeps the
shape of every pretrained weight), and ``resnet-mini``, a small ResNet of the same layout for CPU demos.
Families of backbones too large to list (every timm model, :mod:`.timm_backbone`) register a *resolver*
(:func:`register_backbone_resolver`) that builds a backbone from its name; registered names come first.

Every backbone maps normalized images ``(N, D, H, W)`` to feature maps ``F`` of shape
``(N, K, H/S, W/S)`` (eq. 1.2 notation), and has the attributes ``out_channels`` (K) and ``stride`` (S).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from ..errors import InputError, ModelError
from ..registry import Registry

#: torchvision constructors and ImageNet weight enums of the supported ResNets.
_TORCHVISION = {
    "resnet18": (tv_resnet.resnet18, tv_resnet.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": (tv_resnet.resnet34, tv_resnet.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": (tv_resnet.resnet50, tv_resnet.ResNet50_Weights.IMAGENET1K_V1),
    "resnet101": (tv_resnet.resnet101, tv_resnet.ResNet101_Weights.IMAGENET1K_V1),
}
STRIDES = (8, 16, 32)

#: Default widths of ``resnet-mini``: four stages of one BasicBlock each (0.31 M parameters with a WILDCAT
#: head, 42 MFLOP forward+backward per 64x64 image, 35x less than ResNet-18). A WILDCAT model on it
#: trains at about 200 images/s at 64x64 on one busy CPU core (SGD, batch 32), so about 12 000 images
#: (e.g. 600 images x 20 epochs) take a minute. Wider (32, 64, 128, 256) costs 4x the FLOPs.
MINI_WIDTHS = (16, 32, 64, 128)
MINI_BLOCKS = (1, 1, 1, 1)


def _set_stage_stride(stage: nn.Sequential) -> None:
    """Section 4.4.2: make the first block of a stage keep the resolution. Only strides change, never a
    weight shape, so pretrained weights still load."""
    block = stage[0]
    for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
        if conv.stride != (1, 1):
            conv.stride = (1, 1)


class ResNetFeatures(nn.Module):
    """The convolutional trunk of a torchvision ResNet (stem and four stages), returning feature maps.

    Parameters
    ----------
    arch:
        ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
    stride:
        Total stride: 32 (torchvision's), 16 (last stage keeps the resolution, section 4.4.2) or 8 (the
        last two stages do).
    pretrained:
        Load torchvision's ImageNet weights from the torch hub cache (``$TORCH_HOME/hub/checkpoints``),
        downloading them when the network allows; otherwise a :class:`ModelError` says how to provide
        them.
    weights:
        Path to a local state dict (``.pth``/``.pt`` or ``.safetensors``) of the same torchvision ResNet;
        its ``fc.*`` entries are ignored. Takes precedence over ``pretrained``.
    """

    def __init__(self, arch: str = "resnet18", *, stride: int = 32, pretrained: bool = False,
                 weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        if arch not in _TORCHVISION:
            raise InputError(f"unknown ResNet {arch!r}; choose one of {', '.join(_TORCHVISION)}")
        if stride not in STRIDES:
            raise InputError(f"stride must be one of {STRIDES}, got {stride!r}")
        builder, _ = _TORCHVISION[arch]
        net = builder(weights=None)
        state = None
        if weights is not None:
            state = read_state_dict(Path(weights))
        elif pretrained:
            state = _imagenet_state_dict(arch)
        if state is not None:
            _load_trunk(net, state, arch, source=str(weights) if weights is not None else "ImageNet weights")
        if stride <= 16:
            _set_stage_stride(net.layer4)
        if stride <= 8:
            _set_stage_stride(net.layer3)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.arch = arch
        self.stride = stride
        self.out_channels = net.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNetMini(nn.Module):
    """A small ResNet with the layout of ResNet-18 (stem, four stages of torchvision BasicBlocks, total
    stride 32) and configurable widths, for models that must train in a minute on a CPU.

    The stem is a 3x3 convolution of stride 2 followed by a 2x2 max pooling (a 7x7 stem is oversized for
    the 64x64 images this network is meant for); stages 2-4 halve the resolution. ``stride=16``/``8``
    keep the resolution in the last one/two stages, as for the large ResNets.
    """

    def __init__(self, widths: Sequence[int] = MINI_WIDTHS, blocks: Sequence[int] = MINI_BLOCKS, *,
                 stride: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        widths, blocks = tuple(int(w) for w in widths), tuple(int(b) for b in blocks)
        if len(widths) != 4 or len(blocks) != 4 or min(widths) < 1 or min(blocks) < 1:
            raise InputError(f"resnet-mini needs 4 positive widths and 4 positive block counts, got "
                             f"widths={widths}, blocks={blocks}")
        if stride not in STRIDES:
            raise InputError(f"stride must be one of {STRIDES}, got {stride!r}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        stage_strides = [1, 2, 2 if stride >= 16 else 1, 2 if stride >= 32 else 1]
        stages, cin = [], widths[0]
        for width, count, s in zip(widths, blocks, stage_strides):
            layers = []
            for b in range(count):
                step = s if b == 0 else 1
                down = None
                if step != 1 or cin != width:
                    down = nn.Sequential(nn.Conv2d(cin, width, 1, step, bias=False), nn.BatchNorm2d(width))
                layers.append(tv_resnet.BasicBlock(cin, width, step, down))
                cin = width
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.arch = "resnet-mini"
        self.stride = stride
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


Builder = Callable[..., nn.Module]
Resolver = Callable[[str], "Builder | None"]
_BACKBONES: Registry[Builder] = Registry("backbone")
_RESOLVERS: list[tuple[str, Resolver]] = []


def register_backbone(name: str, builder: Builder) -> Builder:
    """Make ``builder(stride=..., pretrained=..., weights=..., **options)`` available as backbone ``name``
    (to :func:`create_backbone`, every WSL model and ``advwsl train --backbone``). The module it returns
    maps normalized images to feature maps and has ``out_channels`` and ``stride`` attributes."""
    return _BACKBONES.register(name, builder)


def register_backbone_resolver(description: str, resolver: Resolver) -> Resolver:
    """Make a family of backbones available by name: ``resolver(name)`` returns the builder of ``name``
    (same contract as :func:`register_backbone`) or None when the name is not of its family.
    ``description`` says which names it takes (shown when a name is unknown). Registered names win."""
    _RESOLVERS.append((description, resolver))
    return resolver


def list_backbones() -> list[str]:
    """Registered backbone names (the resolvers' families are in :func:`describe_backbone_families`)."""
    return _BACKBONES.names()


def describe_backbone_families() -> list[str]:
    """One line per resolver: the names it takes besides :func:`list_backbones`."""
    return [description for description, _ in _RESOLVERS]


def get_backbone(name: str) -> Builder:
    """The builder of backbone ``name``: a registered name, else the first resolver that takes it."""
    if isinstance(name, str) and name in _BACKBONES:
        return _BACKBONES.get(name)
    for _, resolver in _RESOLVERS:
        builder = resolver(name) if isinstance(name, str) else None
        if builder is not None:
            return builder
    families = "".join(f"; or {d}" for d in describe_backbone_families())
    raise InputError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}{families}")


def create_backbone(name: str = "resnet18", *, stride: int = 32, pretrained: bool = False,
                    weights: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    """A feature extractor by name (see :func:`get_backbone`).

    ``kwargs`` are the backbone's own options (``widths``, ``blocks``, ``in_channels`` of
    :class:`ResNetMini`; timm's constructor options for a timm model); ``pretrained`` loads its ImageNet
    weights and ``weights`` a local state dict.
    """
    return get_backbone(name)(stride=stride, pretrained=pretrained, weights=weights, **kwargs)


def _resnet_mini(*, stride: int = 32, pretrained: bool = False, weights: str | os.PathLike | None = None,
                 **kwargs) -> ResNetMini:
    if pretrained:
        raise ModelError("resnet-mini has no pretrained weights; use pretrained=False or a torchvision "
                         f"backbone ({', '.join(_TORCHVISION)})")
    net = ResNetMini(stride=stride, **kwargs)
    if weights is not None:
        state = read_state_dict(Path(weights))
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelError(f"{weights} is not a resnet-mini state dict of these widths: {exc}") from None
    return net


def _torchvision_resnet(arch: str) -> Builder:
    def build(*, stride: int = 32, pretrained: bool = False, weights: str | os.PathLike | None = None,
              **kwargs) -> ResNetFeatures:
        if kwargs:
            raise InputError(f"backbone {arch!r} takes no options {sorted(kwargs)}; they apply to resnet-mini")
        return ResNetFeatures(arch, stride=stride, pretrained=pretrained, weights=weights)

    return build


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a ``.pth``/``.pt`` (a bare state dict or ``{"state_dict": ...}``) or ``.safetensors``
    file; a :class:`ModelError` names the file when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {str(path)!r} does not exist; give the path of a saved state dict")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated or not a tensor file
        raise ModelError(f"could not read weights from {str(path)!r}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{str(path)!r} does not hold a state dict (found {type(state).__name__})")
    return state


def _load_trunk(net: nn.Module, state: dict[str, torch.Tensor], arch: str, source: str) -> None:
    """Load every trunk weight of ``state`` into ``net`` (the classifier ``fc.*`` is not needed)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    trunk = {k: v for k, v in state.items() if not k.startswith("fc.")}
    expected = {k for k in net.state_dict() if not k.startswith("fc.")}
    missing, unexpected = sorted(expected - set(trunk)), sorted(set(trunk) - expected)
    if missing or unexpected:
        raise key_mismatch(source, f"torchvision {arch}", missing, unexpected,
                           f"give a state dict of torchvision's {arch} (its fc.* keys are ignored)")
    try:
        net.load_state_dict(trunk, strict=False)
    except RuntimeError as exc:
        raise ModelError(f"{source} do not match torchvision {arch}: {exc}") from None


def imagenet_weights_path(arch: str) -> Path:
    """Where torchvision keeps (or would keep) the ImageNet weights of ``arch`` in the torch hub cache."""
    if arch not in _TORCHVISION:
        raise InputError(f"no ImageNet weights for {arch!r}; choose one of {', '.join(_TORCHVISION)}")
    url = _TORCHVISION[arch][1].url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _download(url: str, dst: Path, timeout: float = 30.0) -> None:
    """torch hub download with a socket timeout, so an offline machine fails fast instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), progress=False)
    finally:
        socket.setdefaulttimeout(previous)


def _imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    path = imagenet_weights_path(arch)
    url = _TORCHVISION[arch][1].url
    if not path.is_file():
        try:
            _download(url, path)
        except Exception as exc:  # offline, proxy, disk: all mean the same to the user
            raise ModelError(
                f"ImageNet weights for {arch} were not found at {path} and could not be downloaded from "
                f"{url} ({type(exc).__name__}: {exc}). Download that file on a machine with internet access "
                f"and copy it to {path} (or set TORCH_HOME), pass weights=PATH to a local state dict, or "
                f"use pretrained=False.") from None
    return read_state_dict(path)


def key_mismatch(source: str, target: str, missing: Sequence[str], unexpected: Sequence[str], hint: str) -> ModelError:
    """The error of a state dict that does not fit: how many keys are missing and unexpected, the first ones."""
    def first(keys: Sequence[str]) -> str:
        keys = sorted(keys)
        return f"{keys[:6]}{' ...' if len(keys) > 6 else ''}"

    return ModelError(f"{source} do not match {target}: {len(missing)} missing key(s) {first(missing)}, "
                      f"{len(unexpected)} unexpected key(s) {first(unexpected)}; {hint}")


for _arch in _TORCHVISION:
    register_backbone(_arch, _torchvision_resnet(_arch))
register_backbone("resnet-mini", _resnet_mini)
