"""Stain normalization of H&E images: Macenko et al. (2009) and Reinhard et al. (2001), batched in torch on
images in [0, 1] (any device), for training (:class:`advwsl.data.transforms.StainNormalize`) and for
slides (:class:`advwsl.wsi.SlideConfig` ``stain_norm``).

* **Macenko** ("A method for normalizing histology slides for quantitative analysis", ISBI 2009). Optical
  density ``OD = -log((255 x + 1) / Io)`` (Beer-Lambert; ``Io = 240`` the light intensity); the pixels with
  every channel's OD >= ``beta`` (0.15) are tissue; the plane of the two largest eigenvectors of their OD
  covariance holds both stain vectors, which are the directions at the ``alpha`` and ``100 - alpha``
  percentiles (1 %) of the angle of the projected pixels (haematoxylin first: the larger red OD). The
  concentrations of every pixel (least squares on the stain matrix) are scaled so that their 99th
  percentiles match the target's, and the image is recomposed with the target's stain matrix. The default target is the
  reference of Macenko's published implementation: stain matrix ``[[0.5626, 0.2159], [0.7201, 0.8012],
  [0.4062, 0.5581]]`` (columns H, E) and maximum concentrations ``(1.9705, 1.0308)``.
* **Reinhard** ("Color transfer between images", 2001) in CIE L*a*b* (D65, sRGB), the space stain tools
  use for it (the paper's lαβ is a close relative): every channel is shifted and scaled to the target's
  mean and standard deviation. A target comes from a reference image (:func:`stain_stats`).

Departures, and why: eigenvectors are oriented so that stain vectors have positive OD (an eigen solver's
sign is arbitrary; a negative stain vector gives negative concentrations); an image with fewer than
:data:`MIN_TISSUE_PIXELS` tissue pixels has no stain to estimate and is returned unchanged (a background
tile, whose Macenko estimate would be noise); percentiles are torch's linear quantiles over at most
:data:`MAX_PIXELS` evenly spaced pixels (a thumbnail may be large).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["STAIN_METHODS", "StainStats", "MACENKO_REFERENCE", "stain_stats", "normalize_stain",
           "rgb_to_lab", "lab_to_rgb", "MIN_TISSUE_PIXELS"]

STAIN_METHODS = ("macenko", "reinhard")

#: Fewer tissue pixels than this (OD >= beta in every channel): no stain estimate, the image is left as is.
MIN_TISSUE_PIXELS = 64

#: Percentiles are computed on at most this many pixels (evenly spaced).
MAX_PIXELS = 2**20


@dataclass(frozen=True)
class StainStats:
    """The stain of an image: for ``"macenko"`` the stain ``matrix`` (3, 2) (columns haematoxylin, eosin;
    unit OD vectors) and the 99th percentiles ``max_concentrations`` (2,); for ``"reinhard"`` the L*a*b*
    ``mean`` (3,) and ``std`` (3,)."""

    method: str
    matrix: tuple[tuple[float, float], ...] | None = None
    max_concentrations: tuple[float, float] | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


#: The reference stain of Macenko's published implementation (the default target).
MACENKO_REFERENCE = StainStats("macenko", matrix=((0.5626, 0.2159), (0.7201, 0.8012), (0.4062, 0.5581)),
                               max_concentrations=(1.9705, 1.0308))


def _check(images: Tensor) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() not in (3, 4) or images.shape[-3] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise InputError(f"stain normalization takes RGB images (3, H, W) or (N, 3, H, W) in [0, 1], got {shape}")
    if images.is_floating_point() and images.numel() and (images.min() < 0 or images.max() > 1):
        raise InputError("stain normalization takes images in [0, 1]; scale 8-bit images by 1/255 first")
    return images.float()


def _spaced(pixels: Tensor) -> Tensor:
    """At most :data:`MAX_PIXELS` rows of ``pixels`` (P, k), evenly spaced."""
    step = max(1, -(-pixels.shape[0] // MAX_PIXELS))
    return pixels[::step]


def _optical_density(image: Tensor, io: float) -> Tensor:
    """(H*W, 3) optical densities of one image (3, H, W) in [0, 1]."""
    return -torch.log((image.reshape(3, -1).T * 255 + 1) / io)


def _macenko_stats(image: Tensor, *, io: float, alpha: float, beta: float) -> StainStats | None:
    od = _optical_density(image, io)
    tissue = od[(od >= beta).all(dim=1)].double()
    if tissue.shape[0] < MIN_TISSUE_PIXELS:
        return None
    _, vectors = torch.linalg.eigh(torch.cov(_spaced(tissue).T))
    plane = vectors[:, 1:]  # the two largest (eigh sorts ascending)
    plane = plane * torch.where(plane.sum(0) < 0, -1.0, 1.0).to(plane)  # positive OD
    projected = _spaced(tissue) @ plane
    phi = torch.atan2(projected[:, 1], projected[:, 0])
    lo, hi = torch.quantile(phi, torch.tensor([alpha / 100, 1 - alpha / 100], dtype=phi.dtype))
    stains = [plane @ torch.stack([torch.cos(a), torch.sin(a)]) for a in (lo, hi)]
    stains = [v * (-1.0 if v.sum() < 0 else 1.0) for v in stains]
    matrix = torch.stack(sorted(stains, key=lambda v: -float(v[0])), dim=1)  # haematoxylin: larger red OD
    concentrations = torch.linalg.lstsq(matrix, _spaced(od).double().T).solution  # every pixel, as Macenko's
    max_c = torch.quantile(concentrations.T, 0.99, dim=0)
    return StainStats("macenko", matrix=tuple(tuple(float(v) for v in row) for row in matrix),
                      max_concentrations=(float(max_c[0]), float(max_c[1])))


def _srgb_to_linear(c: Tensor) -> Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: Tensor) -> Tensor:
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)


_RGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                            [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_WHITE = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)  # D65, 2 degrees
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def rgb_to_lab(images: Tensor) -> Tensor:
    """sRGB images (..., 3, H, W) in [0, 1] to CIE L*a*b* (D65; L in [0, 100]), as scikit-image's rgb2lab."""
    linear = _srgb_to_linear(images.double())
    xyz = torch.einsum("ij,...jhw->...ihw", _RGB_TO_XYZ.to(images.device), linear)
    t = xyz / _WHITE.to(images.device).view(3, 1, 1)
    f = torch.where(t > _EPS, t.clamp_min(1e-12) ** (1 / 3), (_KAPPA * t + 16) / 116)
    lab = torch.stack([116 * f[..., 1, :, :] - 16, 500 * (f[..., 0, :, :] - f[..., 1, :, :]),
                       200 * (f[..., 1, :, :] - f[..., 2, :, :])], dim=-3)
    return lab.to(images.dtype)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE L*a*b* (..., 3, H, W) back to sRGB, clipped to [0, 1] (the inverse of :func:`rgb_to_lab`)."""
    lab = lab.double()
    fy = (lab[..., 0, :, :] + 16) / 116
    f = torch.stack([fy + lab[..., 1, :, :] / 500, fy, fy - lab[..., 2, :, :] / 200], dim=-3)
    t = torch.where(f ** 3 > _EPS, f ** 3, (116 * f - 16) / _KAPPA)
    xyz = t * _WHITE.to(lab.device).view(3, 1, 1)
    linear = torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(_RGB_TO_XYZ).to(lab.device), xyz)
    return _linear_to_srgb(linear.clamp(0, 1)).clamp(0, 1).float()


def stain_stats(image: Tensor, method: str = "macenko", *, io: float = 240.0, alpha: float = 1.0,
                beta: float = 0.15) -> StainStats | None:
    """The stain of ``image`` (3, H, W) in [0, 1] (a reference image, or a slide's thumbnail) by ``method``
    (see the module docstring); None for a Macenko image with too few tissue pixels."""
    image = _check(image)
    if image.dim() != 3:
        raise InputError(f"stain_stats takes one image (3, H, W), got {tuple(image.shape)}")
    if method == "macenko":
        return _macenko_stats(image, io=io, alpha=alpha, beta=beta)
    if method == "reinhard":
        lab = rgb_to_lab(image).reshape(3, -1).double()
        return StainStats("reinhard", mean=tuple(lab.mean(1).tolist()), std=tuple(lab.std(1).tolist()))
    raise InputError(f"stain normalization method must be one of {STAIN_METHODS}, got {method!r}")


def _macenko(image: Tensor, target: StainStats, source: StainStats | None, io: float, alpha: float,
             beta: float) -> Tensor:
    source = source or _macenko_stats(image, io=io, alpha=alpha, beta=beta)
    if source is None:
        return image
    od = _optical_density(image, io).double()
    matrix = torch.tensor(source.matrix, dtype=torch.float64, device=image.device)
    concentrations = torch.linalg.lstsq(matrix, od.T).solution
    scale = (torch.tensor(target.max_concentrations, dtype=torch.float64, device=image.device)
             / torch.tensor(source.max_concentrations, dtype=torch.float64, device=image.device))
    recomposed = torch.tensor(target.matrix, dtype=torch.float64, device=image.device) @ (concentrations
                                                                                          * scale[:, None])
    rgb = (io * torch.exp(-recomposed) - 1) / 255  # the inverse of the OD of _optical_density
    return rgb.clamp(0, 1).reshape(image.shape).float()


def _reinhard(image: Tensor, target: StainStats, source: StainStats | None) -> Tensor:
    source = source or stain_stats(image, "reinhard")
    lab = rgb_to_lab(image).double()
    mu_s, sd_s, mu_t, sd_t = (torch.tensor(v, dtype=torch.float64, device=image.device).view(3, 1, 1)
                              for v in (source.mean, source.std, target.mean, target.std))
    return lab_to_rgb((lab - mu_s) / sd_s.clamp_min(1e-6) * sd_t + mu_t)


def normalize_stain(images: Tensor, target: StainStats = MACENKO_REFERENCE, *, source: StainStats | None = None,
                    io: float = 240.0, alpha: float = 1.0, beta: float = 0.15) -> Tensor:
    """Images (3, H, W) or (N, 3, H, W) in [0, 1] with their stain mapped onto ``target``'s (method of the
    target; default Macenko's reference). ``source`` is the images' own stain (e.g. the whole slide's, from
    its thumbnail); None estimates it per image (an image without enough tissue is left unchanged).
    Returns float32 images in [0, 1] of the same shape."""
    images = _check(images)
    if target.method not in STAIN_METHODS:
        raise InputError(f"stain normalization method must be one of {STAIN_METHODS}, got {target.method!r}")
    if source is not None and source.method != target.method:
        raise InputError(f"the source stain is {source.method!r} statistics but the target is {target.method!r}")
    batch = images if images.dim() == 4 else images[None]
    out = [(_macenko(x, target, source, io, alpha, beta) if target.method == "macenko"
            else _reinhard(x, target, source)) for x in batch]
    result = torch.stack(out) if out else batch.clone()
    return result if images.dim() == 4 else result[0]
