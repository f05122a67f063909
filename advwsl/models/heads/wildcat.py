"""WILDCAT pooling (Durand et al. 2017), as written in eq. 3.8 of the reference: a 1x1 convolution
classifies the features into ``C x M`` maps, the ``M`` modalities of each class are averaged (class-wise
pooling), and each class map is pooled into ``s_c = Z+_c / k+ + alpha Z-_c / k-``, the mean of its ``k+``
highest plus ``alpha`` times the mean of its ``k-`` lowest values.

Unlike the original implementation, the sum is not divided by 2 (eq. 3.8 has no such factor).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from ...errors import InputError
from ..zoo import register_head


def _check_k(name: str, k: float | int, allow_zero: bool) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not math.isfinite(k):
        raise InputError(f"WILDCAT {name} must be a count (int) or a fraction (float in (0, 1]), got {k!r}")
    if isinstance(k, numbers.Integral):
        if k < (0 if allow_zero else 1):
            raise InputError(f"WILDCAT {name} as a count must be >= {0 if allow_zero else 1}, got {k}")
    elif not ((0 < k <= 1) or (allow_zero and k == 0)):
        raise InputError(f"WILDCAT {name} as a fraction must be in (0, 1], got {k}; pass an int for a count")


def resolve_k(k: float | int, num_positions: int) -> int:
    """Number of selected instances: an ``int`` is a count, a ``float`` a fraction of the ``h*w``
    positions (rounded, at least 1 unless 0). Counts above ``h*w`` select every position."""
    if isinstance(k, numbers.Integral):
        return min(int(k), num_positions)
    if k == 0:
        return 0
    return min(max(1, round(k * num_positions)), num_positions)


def wildcat_pool(cams: torch.Tensor, kmax: float | int = 0.1, kmin: float | int | None = None,
                 alpha: float = 0.6) -> torch.Tensor:
    """Eq. 3.8: ``s_c = (1/k+) Z+_c + (alpha/k-) Z-_c`` with ``Z+_c`` (``Z-_c``) the sum of the ``k+``
    highest (``k-`` lowest) values of the map ``M_c``.

    Parameters
    ----------
    cams:
        Class maps ``(N, C, h, w)``.
    kmax, kmin:
        ``k+`` and ``k-``: an ``int`` is a count, a ``float`` in (0, 1] a fraction of ``h*w``.
        ``kmin=None`` uses ``kmax`` (as the reference does); ``kmin=0`` or ``alpha=0`` drops the negative
        evidence. Defaults are the histology setting of section 2.1.3.1 (10 %, 10 %, 0.6).
    alpha:
        Weight of the lowest-scoring regions.

    Returns
    -------
    Scores ``(N, C)``. With ``k+ = 1, alpha = 0`` this is max pooling; with ``k+ = h*w, alpha = 0`` it
    is average pooling. Gradients reach exactly the selected positions.
    """
    if cams.dim() != 4:
        raise InputError(f"CAMs must be a (N, C, h, w) tensor, got shape {tuple(cams.shape)}")
    kmin = kmax if kmin is None else kmin
    _check_k("kmax", kmax, allow_zero=False)
    _check_k("kmin", kmin, allow_zero=True)
    flat = cams.flatten(2)
    n = flat.shape[2]
    k_pos, k_neg = resolve_k(kmax, n), resolve_k(kmin, n)
    scores = flat.topk(k_pos, dim=2, largest=True, sorted=False).values.mean(dim=2)
    if alpha != 0 and k_neg > 0:
        low = flat.topk(k_neg, dim=2, largest=False, sorted=False).values.mean(dim=2)
        scores = scores + alpha * low
    return scores


class WildcatHead(nn.Module):
    """WILDCAT head: 1x1 convolution to ``num_classes * modalities`` maps, class-wise average over the
    ``M`` modalities (``M = 4`` as in section 3.4.4; Table 3.1 shows M barely matters), then
    :func:`wildcat_pool`. The CAMs are the class-wise averaged maps."""

    def __init__(self, in_channels: int, num_classes: int, *, modalities: int = 4, kmax: float | int = 0.1,
                 kmin: float | int | None = None, alpha: float = 0.6) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise InputError(f"a head needs in_channels >= 1 and num_classes >= 1, got {in_channels}, "
                             f"{num_classes}")
        if isinstance(modalities, bool) or not isinstance(modalities, numbers.Integral) or modalities < 1:
            raise InputError(f"WILDCAT modalities must be a positive int, got {modalities!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
            raise InputError(f"WILDCAT alpha must be a finite number, got {alpha!r}")
        _check_k("kmax", kmax, allow_zero=False)
        _check_k("kmin", kmax if kmin is None else kmin, allow_zero=True)
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.modalities = int(modalities)
        self.kmax, self.kmin, self.alpha = kmax, kmin, float(alpha)
        self.classifier = nn.Conv2d(in_channels, num_classes * self.modalities, kernel_size=1)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.classifier(features)
        n, _, h, w = maps.shape
        cams = maps.view(n, self.num_classes, self.modalities, h, w).mean(dim=2)
        return wildcat_pool(cams, self.kmax, self.kmin, self.alpha), cams

    def extra_repr(self) -> str:
        return f"modalities={self.modalities}, kmax={self.kmax}, kmin={self.kmin}, alpha={self.alpha}"


register_head("wildcat", WildcatHead, description="WILDCAT, k+ = k- = 10 %, alpha = 0.6, M = 4 (eq. 3.8)")
