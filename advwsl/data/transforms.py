"""Joint image + mask augmentations of sections 2.1.3.1 (histology) and 3.4.2 (Pascal VOC), and the
per-dataset presets.

Every transform takes and returns a *sample dict* ``{"image": (C, H, W) float in [0, 1], "mask": (H, W)
(optional), "label": ..., ...}``. Geometric transforms move image and mask together (the mask with nearest
neighbour interpolation, so it keeps its values); photometric ones touch the image only. Randomness comes
from torch's global generator (seeded per worker by the DataLoader), so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torchvision.transforms import ColorJitter as _TVColorJitter
from torchvision.transforms import functional as TF

from ..errors import InputError

if TYPE_CHECKING:
    from .stain import StainStats

Sample = dict
Transform = Callable[[Sample], Sample]


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand(()).item()


def _randint(lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi]."""
    return int(torch.randint(lo, hi + 1, ()).item())


def _map_mask(sample: Sample, fn: Callable[[torch.Tensor], torch.Tensor]) -> Sample:
    out = dict(sample)
    out["image"] = fn(sample["image"])
    if sample.get("mask") is not None:
        out["mask"] = fn(sample["mask"].unsqueeze(0)).squeeze(0)
    return out


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class RandomCrop:
    """A ``size`` x ``size`` crop at a uniformly random location (section 2.1.3.1: 448 for BreakHis, 416 for
    GlaS). Images smaller than ``size`` are padded with reflection first (mask with zeros)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, sample: Sample) -> Sample:
        img = sample["image"]
        h, w = img.shape[-2:]
        s = self.size
        if h < s or w < s:
            ph, pw = max(0, s - h), max(0, s - w)
            pads = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
            sample = dict(sample)
            sample["image"] = F.pad(img.unsqueeze(0), pads, mode="reflect" if min(h, w) > max(ph, pw) else
                                    "replicate").squeeze(0)
            if sample.get("mask") is not None:
                sample["mask"] = F.pad(sample["mask"], pads, value=0)
            h, w = sample["image"].shape[-2:]
        top, left = _randint(0, h - s), _randint(0, w - s)
        return _map_mask(sample, lambda t: t[..., top:top + s, left:left + s])

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class CenterCrop:
    """The central ``size`` x ``size`` crop (deterministic evaluation counterpart of :class:`RandomCrop`)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample["image"].shape[-2:]
        if h < self.size or w < self.size:
            raise InputError(f"image of size {h}x{w} is smaller than the center crop {self.size}")
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return _map_mask(sample, lambda t: t[..., top:top + self.size, left:left + self.size])


class RandomRotate90:
    """Rotation by a random angle in {0, 90, 180, 270} degrees (section 2.1.3.1)."""

    def __call__(self, sample: Sample) -> Sample:
        k = _randint(0, 3)
        return _map_mask(sample, lambda t: torch.rot90(t, k, dims=(-2, -1))) if k else sample

    def __repr__(self) -> str:
        return "RandomRotate90()"


class RandomFlip:
    """Horizontal (and optionally vertical) flips, each with probability ``p`` (section 2.1.3.1)."""

    def __init__(self, horizontal: bool = True, vertical: bool = True, p: float = 0.5) -> None:
        self.horizontal, self.vertical, self.p = horizontal, vertical, p

    def __call__(self, sample: Sample) -> Sample:
        if self.horizontal and torch.rand(()).item() < self.p:
            sample = _map_mask(sample, lambda t: t.flip(-1))
        if self.vertical and torch.rand(()).item() < self.p:
            sample = _map_mask(sample, lambda t: t.flip(-2))
        return sample

    def __repr__(self) -> str:
        return f"RandomFlip(horizontal={self.horizontal}, vertical={self.vertical}, p={self.p})"


class ColorJitter:
    """PyTorch's colour jittering on the image only (section 2.1.3.1: brightness, contrast, saturation 0.5,
    hue 0.05; section 3.4.2: 0.3, 0.3, 0.3, 0.1). The result is clamped to [0, 1]."""

    def __init__(self, brightness: float = 0.5, contrast: float = 0.5, saturation: float = 0.5,
                 hue: float = 0.05) -> None:
        self.jitter = _TVColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        img = sample["image"]
        out["image"] = self.jitter(img).clamp(0, 1) if img.shape[0] == 3 else img
        return out

    def __repr__(self) -> str:
        return repr(self.jitter)


class RandomRotatedCrop:
    """A ``size`` x ``size`` crop at a random location and a random angle in [0, 360) that never reaches
    outside the image, so no empty corner is included (BACH, section 2.1.3.1: 512 x 512 crops).

    For angle theta the rotated square's bounding box has half-side ``size (|cos| + |sin|) / 2``; the centre is
    drawn uniformly where that box fits. Bilinear resampling for the image, nearest for the mask."""

    def __init__(self, size: int = 512) -> None:
        self.size = int(size)

    def __call__(self, sample: Sample) -> Sample:
        img = sample["image"]
        h, w = img.shape[-2:]
        if min(h, w) < self.size:
            raise InputError(f"image of size {h}x{w} is smaller than the rotated crop {self.size}; "
                             f"use a smaller crop size")
        # largest angle-dependent half-extent that fits; redraw the angle if the image is too narrow for it
        for _ in range(100):
            theta = _uniform(0.0, 2 * math.pi)
            half = 0.5 * self.size * (abs(math.cos(theta)) + abs(math.sin(theta)))
            if 2 * half <= min(h, w) - 1:
                break
        else:
            theta, half = 0.0, 0.5 * self.size
        cx, cy = _uniform(half, w - half), _uniform(half, h - half)
        # output pixel (u, v) around the crop centre maps to input (cx, cy) + R(theta) (u, v)
        c = torch.arange(self.size, dtype=img.dtype) - (self.size - 1) / 2
        v, u = torch.meshgrid(c, c, indexing="ij")
        x = cx - 0.5 + math.cos(theta) * u - math.sin(theta) * v
        y = cy - 0.5 + math.sin(theta) * u + math.cos(theta) * v
        grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1).unsqueeze(0)
        out = dict(sample)
        out["image"] = F.grid_sample(img.unsqueeze(0), grid, mode="bilinear", align_corners=False)[0].clamp(0, 1)
        if sample.get("mask") is not None:
            m = sample["mask"].unsqueeze(0).unsqueeze(0)
            out["mask"] = F.grid_sample(m.float(), grid, mode="nearest", align_corners=False)[0, 0].to(m.dtype)
        return out

    def __repr__(self) -> str:
        return f"RandomRotatedCrop({self.size})"


class Resize:
    """Resize image (bilinear, antialiased) and mask (nearest) to ``size`` = (height, width) or side."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        out["image"] = TF.resize(sample["image"], list(self.size), antialias=True).clamp(0, 1)
        if sample.get("mask") is not None:
            m = sample["mask"]
            out["mask"] = TF.resize(m.unsqueeze(0), list(self.size),
                                    interpolation=TF.InterpolationMode.NEAREST).squeeze(0)
        return out


class RandomScaleCrop:
    """Pascal VOC multi-scale crop of section 3.4.2: resize to ``size`` x ``size`` (448), take a square
    crop of random side in [``min_size``, ``size``] (224..448) at a random location, and resize it back to
    ``size`` x ``size`` (a random zoom of 1 to 2)."""

    def __init__(self, size: int = 448, min_size: int = 224) -> None:
        if not 0 < min_size <= size:
            raise InputError(f"need 0 < min_size <= size, got min_size={min_size}, size={size}")
        self.size, self.min_size = size, min_size
        self.resize = Resize(size)

    def __call__(self, sample: Sample) -> Sample:
        sample = self.resize(sample)
        side = _randint(self.min_size, self.size)
        top, left = _randint(0, self.size - side), _randint(0, self.size - side)
        sample = _map_mask(sample, lambda t: t[..., top:top + side, left:left + side])
        return self.resize(sample)


class RandomGaussianBlur:
    """Gaussian blur of the image with a radius (standard deviation) uniform in [0, ``max_radius``]
    (section 3.4.2: [0, 2])."""

    def __init__(self, max_radius: float = 2.0) -> None:
        self.max_radius = max_radius

    def __call__(self, sample: Sample) -> Sample:
        sigma = _uniform(0.0, self.max_radius)
        if sigma < 0.1:
            return sample
        k = 2 * int(math.ceil(3 * sigma)) + 1
        out = dict(sample)
        out["image"] = TF.gaussian_blur(sample["image"], [k, k], [sigma, sigma])
        return out


class StainNormalize:
    """Stain normalization of the image (:mod:`advwsl.data.stain`; the mask is untouched): its stain is
    estimated on the image itself and mapped onto ``target`` (default: Macenko's reference stain; a
    Reinhard target from :func:`advwsl.data.stain.stain_stats` of a reference image). Deterministic, so it
    may run before the random transforms."""

    def __init__(self, target: "StainStats | None" = None, **kwargs: float) -> None:
        from .stain import MACENKO_REFERENCE

        self.target = target if target is not None else MACENKO_REFERENCE
        self.kwargs = kwargs

    def __call__(self, sample: Sample) -> Sample:
        from .stain import normalize_stain

        out = dict(sample)
        out["image"] = normalize_stain(sample["image"], self.target, **self.kwargs)
        return out

    def __repr__(self) -> str:
        return f"StainNormalize({self.target.method})"
