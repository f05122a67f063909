"""Weakly supervised classifiers: normalization + backbone + pooling head (section 1.3.2.1), returning
logits from ``forward`` and class activation maps from ``cams``; bilinear upsampling of the CAMs to the
input size (section 1.3.4) and the test-time augmentation of section 3.4.2."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .backbones import create_backbone
from .cams import upsample_cams
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize


class WSLClassifier(nn.Module):
    """``Normalize -> backbone -> head`` on images in [0, 1].

    Parameters
    ----------
    backbone:
        Feature extractor with ``out_channels`` and ``stride`` attributes (see ``backbones.py``).
    head:
        A pooling head mapping features to ``(logits, cams)`` with a ``num_classes`` attribute.
    mean, std:
        Normalization, ImageNet's by default (the backbones are ImageNet models).
    config:
        The model zoo's description (``{"name": ..., **kwargs}``) that rebuilds this model with
        ``create_model(**config)``; set by :func:`advwsl.models.create_model`.

    Attributes
    ----------
    num_classes, stride, config.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        self.head = head
        self.num_classes = int(head.num_classes)
        self.stride = int(backbone.stride)
        self.in_channels = len(tuple(mean))
        self.config = dict(config) if config is not None else None

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(f"expected images (N, {self.in_channels}, H, W) in [0, 1], got {shape}")
        if x.shape[2] < self.stride or x.shape[3] < self.stride:
            raise InputError(f"images of size {tuple(x.shape[2:])} are smaller than the model's stride "
                             f"{self.stride}; use inputs of at least {self.stride}x{self.stride}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``F`` ``(N, K, H/S, W/S)`` of images in [0, 1]."""
        self._check(x)
        return self.backbone(self.normalize(x))

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, C)`` and CAMs ``(N, C, H/S, W/S)``, both differentiable w.r.t. ``x``."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cams(x)[0]


def tta_cams(model: nn.Module, inputs: torch.Tensor, *,
                           scales: Sequence[float] = (0.5, 1.0, 1.5, 2.0),
                           flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 3.4.2: CAMs of the image and of its horizontal flip at several scales (0.5, 1, 1.5, 2),
    each resized bilinearly to the input size (flipped back), then averaged; the logits are averaged too.

    Returns ``(logits (N, C), cams (N, C, H, W))`` at the input resolution. Runs in the model's current
    mode and keeps the autograd graph (wrap in ``torch.no_grad()`` for evaluation).
    """
    if not hasattr(model, "cams"):
        raise InputError(f"{type(model).__name__} has no cams(x) method; test-time augmentation needs a WSL "
                         "model")
    if not scales or any(s <= 0 for s in scales):
        raise InputError(f"scales must be positive numbers, got {tuple(scales)}")
    size = tuple(inputs.shape[2:])
    stride = int(getattr(model, "stride", 1))
    logits_sum, cams_sum, count = None, None, 0
    for scale in scales:
        scaled_size = tuple(max(stride, round(s * scale)) for s in size)
        scaled = inputs if scaled_size == size else F.interpolate(
            inputs, size=scaled_size, mode="bilinear", align_corners=False)
        for flipped in ((False, True) if flip else (False,)):
            view = scaled.flip(3) if flipped else scaled
            logits, cams = model.cams(view)
            cams = upsample_cams(cams, size)
            if flipped:
                cams = cams.flip(3)
            logits_sum = logits if logits_sum is None else logits_sum + logits
            cams_sum = cams if cams_sum is None else cams_sum + cams
            count += 1
    return logits_sum / count, cams_sum / count


def wsl_builder(head_cls: type[nn.Module], fixed: dict[str, Any] | None = None, *,
                model_cls: type[WSLClassifier] = WSLClassifier) -> Callable[..., WSLClassifier]:
    """A zoo builder of weakly supervised models (``model_cls``, a :class:`WSLClassifier`) with the head
    ``head_cls``: the backbone options (``backbone``, ``stride``, ``pretrained``, ``weights``,
    ``backbone_kwargs``), the normalization (default: the backbone's ``mean``/``std`` attributes when it has
    them, e.g. a timm model's, else ImageNet's) and the head's own options (its constructor's, minus those
    set in ``fixed``), all keyword arguments."""
    fixed = dict(fixed or {})
    head_params = {
        n: p.default for n, p in inspect.signature(head_cls).parameters.items()
        if n not in ("in_channels", "num_classes") and n not in fixed
    }

    def build(num_classes: int = 2, backbone: str = "resnet18", *, stride: int = 32, pretrained: bool = False,
              weights: str | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, backbone_kwargs: dict[str, Any] | None = None,
              **head_kwargs: Any) -> WSLClassifier:
        unknown = sorted(set(head_kwargs) - set(head_params))
        if unknown:
            raise InputError(f"{head_cls.__name__} has no option(s) {unknown}; its options are "
                             f"{sorted(head_params) or 'none'}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(f"num_classes must be a positive int, got {num_classes!r}")
        net = create_backbone(backbone, stride=stride, pretrained=pretrained, weights=weights,
                              **(backbone_kwargs or {}))
        mean = list(mean if mean is not None else getattr(net, "mean", IMAGENET_MEAN))
        std = list(std if std is not None else getattr(net, "std", IMAGENET_STD))
        hparams = {**head_params, **head_kwargs}
        head = head_cls(net.out_channels, num_classes, **fixed, **hparams)
        config = {"num_classes": num_classes, "backbone": backbone, "stride": stride, "mean": list(mean),
                  "std": list(std), "backbone_kwargs": dict(backbone_kwargs or {}), **hparams}
        return model_cls(net, head, mean=mean, std=std, config=config)

    build.__doc__ = f"{head_cls.__name__} on a ResNet (or timm) backbone.\n\n{head_cls.__doc__}"
    return build
