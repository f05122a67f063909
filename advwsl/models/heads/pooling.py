"""Spatial score pooling (section 1.3.2.1, section 3.2): a 1x1 convolution classifies every location of
the feature maps into class activation maps ``M`` (eq. 1.3 / 3.3), which are pooled into per-class
scores by global average (eq. 1.7 / 3.4, CAM), max (Oquab et al.) or log-sum-exp (eq. 3.6-3.7).

Every head maps features ``(N, K, h, w)`` to ``(logits (N, C), cams (N, C, h, w))``; the CAMs are part
of the autograd graph (never detached, never kept on the module).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import InputError
from ..zoo import register_head


def _check_cams(cams: torch.Tensor) -> None:
    if cams.dim() != 4:
        raise InputError(f"CAMs must be a (N, C, h, w) tensor, got shape {tuple(cams.shape)}")


def average_pool(cams: torch.Tensor) -> torch.Tensor:
    """Eq. 3.4: ``s_c = mean_ij M_cij``, equal to global average pooling followed by the linear layer."""
    _check_cams(cams)
    return cams.mean(dim=(2, 3))


def max_pool(cams: torch.Tensor) -> torch.Tensor:
    """Max pooling of Oquab et al. (section 3.2): ``s_c = max_ij M_cij``. The gradient reaches the
    arg max location (split evenly between exact ties)."""
    _check_cams(cams)
    return cams.amax(dim=(2, 3))


def lse_pool(cams: torch.Tensor, q: float = 10.0) -> torch.Tensor:
    """Log-sum-exp pooling, eq. 3.6, computed in the stable form of eq. 3.7:
    ``s_c = max M_c + (1/q) log( (1/hw) sum_ij exp(q (M_cij - max M_c)) )``.

    ``q -> 0`` gives the average, ``q -> inf`` the max. The max is subtracted per class map, so
    ``q * M`` never overflows. The subtracted max is detached: the formula does not depend on it, and its
    gradient would cancel exactly.
    """
    _check_cams(cams)
    if not (isinstance(q, (int, float)) and q > 0 and math.isfinite(q)):
        raise InputError(f"LSE q must be a finite positive number, got {q!r}")
    flat = cams.flatten(2)
    peak = flat.amax(dim=2, keepdim=True).detach()
    centered = torch.exp(q * (flat - peak)).mean(dim=2)
    return peak.squeeze(2) + torch.log(centered) / q


class _ScorePoolingHead(nn.Module):
    """1x1 convolution to one CAM per class (eq. 3.3), then a pooling of each CAM into a score."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise InputError(f"a head needs in_channels >= 1 and num_classes >= 1, got {in_channels}, "
                             f"{num_classes}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.classifier = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def pool(self, cams: torch.Tensor) -> torch.Tensor:
        return average_pool(cams)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cams = self.classifier(features)
        return self.pool(cams), cams


class CAMHead(_ScorePoolingHead):
    """CAM of Zhou et al.: global average pooling + linear layer, written as a 1x1 convolution followed
    by the average of each CAM (eq. 1.2-1.3, 3.1-3.4). The CAMs include the bias (eq. 3.3)."""


class MaxHead(_ScorePoolingHead):
    """Max pooling of the CAMs (Oquab et al., section 3.2)."""

    def pool(self, cams: torch.Tensor) -> torch.Tensor:
        return max_pool(cams)


class LSEHead(_ScorePoolingHead):
    """Log-sum-exp pooling of the CAMs (eq. 3.6-3.7). ``q = 10`` is the histology setting of section
    2.1.3.1; ``q = 0.5`` was best on Pascal VOC (section 3.4.4)."""

    def __init__(self, in_channels: int, num_classes: int, q: float = 10.0) -> None:
        super().__init__(in_channels, num_classes)
        if not (isinstance(q, (int, float)) and q > 0 and math.isfinite(q)):
            raise InputError(f"LSE q must be a finite positive number, got {q!r}")
        self.q = float(q)

    def pool(self, cams: torch.Tensor) -> torch.Tensor:
        return lse_pool(cams, self.q)

    def extra_repr(self) -> str:
        return f"q={self.q}"


register_head("cam", CAMHead, description="CAM / global average pooling (eq. 1.2-1.3, 3.1-3.4)")
register_head("max", MaxHead, description="max pooling of the CAMs (Oquab et al.)")
register_head("lse", LSEHead, description="log-sum-exp pooling, q = 10 (eq. 3.6-3.7)")
