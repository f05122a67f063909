"""The unsupervised entropy loss of section 4.3 (eq. 4.12), which pushes the normalized CAMs towards 0 or 1
so that the soft size estimate of eq. 4.7 approaches the size of the arg max segmentation (eq. 4.6)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["entropy_loss"]


def entropy_loss(norm_cams: Tensor, eps: float = 1e-12) -> Tensor:
    """Eq. 4.12: l_e = -sum_c (1 / H W) sum_{h,w} M_hat_{c,h,w} log M_hat_{c,h,w} per sample ``(N,)``, for
    normalized CAMs ``(N, C, H, W)`` in [0, 1] (0 log 0 = 0).

    The logarithm is taken of ``max(M_hat, eps)``: saturated softmax values are exactly 0 in float32, where
    the gradient of x log x is infinite and would turn the whole backward pass into NaN."""
    if norm_cams.dim() != 4:
        raise InputError(f"normalized CAMs must be (N, C, H, W), got shape {tuple(norm_cams.shape)}")
    return -(norm_cams * torch.log(norm_cams.clamp_min(eps))).mean(dim=(2, 3)).sum(1)
