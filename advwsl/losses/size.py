"""Size supervision (chapter 4): predicted relative sizes from normalized, upsampled CAMs (eq. 4.7), the
size penalties KL (eq. 4.8), L2 (eq. 4.9) and the adaptive robust loss (eq. 4.10-4.11), and the size
annotations with their noise (section 4.4.3).

Classes and background. A model has ``K`` image classes and CAMs ``(N, K, h, w)``. As in section 3.4.2,
the background gets a constant score of 0 that is prepended to every pixel's class scores, so the
normalized CAMs ``M_hat`` have ``K + 1`` channels (background first) and the size vectors ``a`` and
``nu_hat`` have ``K + 1`` components summing to 1 (section 4.3). The true size of an image of class ``y``
is ``a_{y+1}`` = the fraction of its mask, ``a_0 = 1 - a_{y+1}`` and the other components are 0 (the
GlaS and CAMELYON16 annotations of section 4.4.3).

On CAMELYON16 this gives three components (background, normal, metastatic) with the normal one always 0,
where the reference's text reads two (normal tissue, metastatic). The three are kept on purpose: it is the
shape the reference uses on GlaS ("one component of the size vector for GlaS is always zero"), one
normalization and one segmentation rule (arg max of [0, M], section 3.4.2) serve every dataset, and the
metastatic size target (the mask's fraction) is the same in both readings; the difference is that the
normal class's map is pushed below the constant background instead of standing for it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import InputError
from ..models.cams import upsample_cams
from .robust import AdaptiveRobustLoss

__all__ = ["normalized_cams", "predicted_sizes", "size_targets", "add_size_noise", "per_image_noise",
           "SizeAnnotator", "kl_size_loss", "l2_size_loss", "AdaptiveSizeLoss", "SIZE_LOSSES"]

NORMALIZATIONS = ("softmax", "sigmoid")


def normalized_cams(cams: Tensor, size: tuple[int, int] | int, *, normalization: str = "softmax",
                    background: bool = True) -> Tensor:
    """M_hat of section 4.3: CAMs ``(N, K, h, w)`` upsampled bilinearly to the input ``size`` and normalized
    per pixel by a softmax over the classes (multi-class) or a sigmoid (multi-label). With ``background``
    a constant 0 score is prepended first, giving ``(N, K + 1, H, W)`` with the background in channel 0."""
    if normalization not in NORMALIZATIONS:
        raise InputError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    up = upsample_cams(cams, size)
    if background:
        up = torch.cat([torch.zeros_like(up[:, :1]), up], dim=1)
    return torch.softmax(up, dim=1) if normalization == "softmax" else torch.sigmoid(up)


def predicted_sizes(norm_cams: Tensor) -> Tensor:
    """Eq. 4.7: nu_hat_c = (1 / H W) sum_{h,w} M_hat_{c,h,w}, the relative size of each class estimated from
    the normalized CAMs ``(N, C, H, W)``; returns ``(N, C)``."""
    if norm_cams.dim() != 4:
        raise InputError(f"normalized CAMs must be (N, C, H, W), got shape {tuple(norm_cams.shape)}")
    return norm_cams.mean(dim=(2, 3))


def size_targets(masks: Tensor, labels: Tensor, num_classes: int, *, background: bool = True) -> Tensor:
    """True relative sizes ``a`` (section 4.4.3) from binary region masks ``(N, H, W)`` of each image's
    class: ``a_{y+1}`` = mask fraction, ``a_0`` = the rest (``background=True``, ``(N, K + 1)``), or the
    fraction at ``a_y`` alone (``background=False``, ``(N, K)``)."""
    if masks.dim() != 3 or labels.shape != (masks.shape[0],):
        raise InputError(f"expected masks (N, H, W) and labels (N,), got {tuple(masks.shape)} and "
                         f"{tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"labels must be in [0, {num_classes - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    frac = (masks > 0.5).flatten(1).double().mean(1)
    offset = 1 if background else 0
    a = torch.zeros((masks.shape[0], num_classes + offset), dtype=torch.float64, device=masks.device)
    a.scatter_(1, labels.long().view(-1, 1) + offset, frac.view(-1, 1))
    if background:
        a[:, 0] = 1 - frac
    return a.float()


def per_image_noise(indices: Tensor, sigma: float, seed: int) -> Tensor:
    """Size noise z ~ N(0, sigma^2) fixed per image (section 4.4.3, CAMELYON16 protocol): a function of
    ``(seed, index)`` only, so an image gets the same perturbation throughout training."""
    z = [np.random.default_rng([int(seed), int(i)]).standard_normal() for i in indices.tolist()]
    return torch.tensor(z, dtype=torch.float32, device=indices.device) * float(sigma)


def add_size_noise(sizes: Tensor, labels: Tensor, sigma: float = 0.0, *, generator: torch.Generator | None = None,
                   noise: Tensor | None = None, background: bool = True) -> Tensor:
    """Section 4.4.3: a_hat_{y} = clip(a_{y} + z, 0, 1) and a_hat_0 = 1 - a_hat_{y}, with z ~ N(0, sigma^2)
    drawn per call (per crop, the GlaS protocol) unless ``noise`` (N,) gives it (per image, see
    :func:`per_image_noise`)."""
    if sigma < 0:
        raise InputError(f"the size noise sigma_s must be >= 0, got {sigma}")
    if noise is None:
        if sigma == 0:
            return sizes
        noise = torch.randn(sizes.shape[0], generator=generator).to(sizes.device) * sigma
    offset = 1 if background else 0
    idx = labels.long().view(-1, 1).to(sizes.device) + offset
    noisy = (sizes.gather(1, idx)[:, 0] + noise.to(sizes)).clamp(0, 1)
    out = sizes.scatter(1, idx, noisy.view(-1, 1))
    if background:
        out[:, 0] = 1 - noisy
    return out


class SizeAnnotator:
    """Size annotations of a training batch (section 4.4.3): true sizes from the (cropped) masks, plus
    noise z ~ N(0, sigma_s^2) drawn per crop (``mode="per_crop"``, GlaS) or fixed per image index
    (``mode="per_image"``, CAMELYON16). Call as ``annotator(masks, labels, indices)``; the per-crop
    generator is part of :meth:`state_dict` so a resumed run draws the same noise."""

    def __init__(self, num_classes: int, sigma: float = 0.0, *, mode: str = "per_crop", seed: int = 0) -> None:
        if mode not in ("per_crop", "per_image"):
            raise InputError(f"mode must be 'per_crop' or 'per_image', got {mode!r}")
        if sigma < 0:
            raise InputError(f"the size noise sigma_s must be >= 0, got {sigma}")
        self.num_classes, self.sigma, self.mode, self.seed = int(num_classes), float(sigma), mode, int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, masks: Tensor, labels: Tensor, indices: Tensor | None = None) -> Tensor:
        sizes = size_targets(masks, labels, self.num_classes)
        if self.sigma == 0:
            return sizes
        if self.mode == "per_image":
            if indices is None:
                raise InputError("per-image size noise needs the sample indices; use a dataset whose samples "
                                 "carry an 'index' or mode='per_crop'")
            return add_size_noise(sizes, labels, noise=per_image_noise(indices, self.sigma, self.seed))
        return add_size_noise(sizes, labels, self.sigma, generator=self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 2:
        raise InputError(f"predicted sizes {tuple(pred.shape)} and true sizes {tuple(target.shape)} must both be "
                         "(N, C); build the targets with the same background setting")


def kl_size_loss(pred: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Eq. 4.8: l_s = sum_c a_c log(a_c / nu_hat_c) per sample ``(N,)`` (0 log 0 = 0)."""
    _check_pair(pred, target)
    return (torch.xlogy(target, target) - target * torch.log(pred.clamp_min(eps))).sum(1)


def l2_size_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. 4.9: l_s = sum_c (nu_hat_c - a_c)^2 per sample ``(N,)``."""
    _check_pair(pred, target)
    return ((pred - target) ** 2).sum(1)


class AdaptiveSizeLoss(nn.Module):
    """Eq. 4.10-4.11 on the size residuals: l_s = sum_c -log p(nu_hat_c - a_c | alpha, gamma) per sample,
    with alpha and gamma learned (they are this module's parameters). ``num_components > 1`` learns one
    (alpha, gamma) pair per size component (background included) instead of a shared one; other keyword
    arguments go to :class:`~advwsl.losses.robust.AdaptiveRobustLoss`."""

    def __init__(self, num_components: int = 1, **kwargs) -> None:
        super().__init__()
        # Start as the L2 loss of eq. 4.9 (alpha near 2) and keep the scale above 1e-3 (0.1 % of the image,
        # below any meaningful size annotation): from alpha = 1 or with a vanishing scale, the NLL rewards
        # residuals that are exactly zero (e.g. images without any region) so strongly that training from
        # scratch collapses to all-background CAMs or diverges.
        kwargs.setdefault("alpha_init", 1.99)
        kwargs.setdefault("scale_min", 1e-3)
        self.robust = AdaptiveRobustLoss(num_components, **kwargs)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(pred, target)
        return self.robust(pred - target).sum(1)


SIZE_LOSSES = ("kl", "l2", "adaptive")
