"""How a synthetic histology tile is drawn, for :class:`advwsl.data.synthetic.SyntheticHistology` (whose
docstring describes the tiles): a tile's layout -- stroma texture, stain colours, holes, the region of
interest and its nuclei as impulses -- drawn from a seeded generator (:func:`tile_layout`), and a batch of
layouts rendered into 8-bit-quantized RGB images and masks (:func:`render_tiles`), the nuclei stamped by
one FFT convolution."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["tile_layout", "render_tiles"]

_SMALL = ((1.0, 1.0, 0.0), (1.25, 1.25, 0.0), (1.5, 1.5, 0.0))           # (semi-axis a, b, angle)
_LARGE = ((2.4, 2.4, 0.0), (3.0, 3.0, 0.0), (3.4, 3.4, 0.0), (3.6, 2.5, 0.0), (3.6, 2.5, 45.0),
          (3.6, 2.5, 90.0), (3.6, 2.5, 135.0))
_N_SMALL, _N_LARGE = len(_SMALL), len(_LARGE)


@lru_cache(maxsize=8)
def _kernels(scale: float) -> tuple[torch.Tensor, np.ndarray]:
    """Anti-aliased nucleus stamps (K, 1, k, k) and their integrals: small solid ellipses, then large
    vesicular ones (dark rim, pale centre, dark central nucleolus, as in malignant nuclei)."""
    shapes = _SMALL + _LARGE
    half = int(math.ceil(max(a for a, _, _ in shapes) * scale + 1))
    sub = 4  # 4x4 supersampling per pixel for the coverage
    t = (np.arange(-half * sub, (half + 1) * sub) + 0.5) / sub - 0.5
    yy, xx = np.meshgrid(t, t, indexing="ij")
    stamps = []
    k = 2 * half + 1
    for i, (a, b, ang) in enumerate(shapes):
        th = math.radians(ang)
        u = (xx * math.cos(th) + yy * math.sin(th)) / (a * scale)
        v = (-xx * math.sin(th) + yy * math.cos(th)) / (b * scale)
        r2 = u * u + v * v
        stamp = (r2 <= 1.0).astype(np.float32)
        if i >= _N_SMALL:
            stamp = stamp * (1.0 - 0.7 * (r2 <= 0.3))
            stamp = np.maximum(stamp, (xx * xx + yy * yy <= (0.8 * scale) ** 2).astype(np.float32))
        stamps.append(stamp.reshape(k, sub, k, sub).mean(axis=(1, 3)))
    bank = np.stack(stamps)[:, None].astype(np.float32)
    return torch.from_numpy(bank), bank.sum(axis=(1, 2, 3))


def _smooth_noise(rng: np.random.Generator, size: int, cell: int, count: int) -> np.ndarray:
    """``count`` smooth random fields (count, size, size) in about [-1, 1]: bilinear interpolation of a
    coarse Gaussian grid with one node every ``cell`` pixels."""
    g = size // cell + 2
    coarse = torch.from_numpy(rng.standard_normal((1, count, g, g)).astype(np.float32))
    fine = F.interpolate(coarse, size=(g - 1) * cell, mode="bilinear", align_corners=True)
    return fine[0, :, :size, :size].clamp(-2.5, 2.5).numpy() / 2.5


def _disc_union(size: int, circles: np.ndarray) -> np.ndarray:
    """Anti-aliased union of discs (rows cx, cy, r) as an (size, size) coverage map."""
    if len(circles) == 0:
        return np.zeros((size, size), np.float32)
    c = np.arange(size, dtype=np.float32)
    dx = c[None, None, :] - circles[:, 0, None, None]
    dy = c[None, :, None] - circles[:, 1, None, None]
    cover = np.clip(circles[:, 2, None, None] - np.sqrt(dx * dx + dy * dy) + 0.5, 0.0, 1.0)
    return cover.max(axis=0).astype(np.float32)


def _roi_mask(rng: np.random.Generator, size: int, roi_fraction: tuple[float, float], border: np.ndarray,
              xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The ROI of a lesion tile: an ellipse of log-uniform area with a noisy border (``border`` in [-1, 1]),
    and its centre pixel (always inside the mask)."""
    s, area = float(size), float(size * size)
    lo, hi = roi_fraction
    frac = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    aspect = math.exp(rng.uniform(-0.4, 0.4))
    a = math.sqrt(frac * area / math.pi / aspect)
    b = a * aspect
    ext = 0.5 * max(a, b)
    cx, cy = (rng.uniform(min(ext, s / 2), max(s - ext, s / 2)) for _ in range(2))
    th = rng.uniform(0, math.pi)
    u = ((xx - cx) * math.cos(th) + (yy - cy) * math.sin(th)) / a
    v = (-(xx - cx) * math.sin(th) + (yy - cy) * math.cos(th)) / b
    mask = (np.sqrt(u * u + v * v) < 1.0 + 0.3 * border).astype(np.float32)
    centre = (int(min(max(round(cx), 0), size - 1)), int(min(max(round(cy), 0), size - 1)))
    mask[centre[1], centre[0]] = 1.0
    return mask, centre


def _holes(rng: np.random.Generator, size: int, scale: float, mask: np.ndarray | None, xx: np.ndarray,
           yy: np.ndarray) -> np.ndarray:
    """Pale holes anywhere (vessels, fat, tears) as rows (cx, cy, r); with a ROI ``mask`` they are moved
    out of it (same count as in normal tiles) so they never hide the lesion, or dropped (r = 0)."""
    s = float(size)
    n_holes = int(rng.integers(0, 4))
    holes = np.stack([rng.uniform(0, s, n_holes), rng.uniform(0, s, n_holes),
                      rng.uniform(1.5, 5.0, n_holes) * scale], axis=1)
    if mask is None:
        return holes
    for h in holes:
        for _ in range(20):
            if not (mask[np.hypot(xx - h[0], yy - h[1]) <= h[2] + 1.5] > 0).any():
                break
            h[0], h[1] = rng.uniform(0, s, 2)
        else:
            h[2] = 0.0
    return holes


def _glands(rng: np.random.Generator, size: int, scale: float, big: bool, mask: np.ndarray,
            centre: tuple[int, int], impulses: np.ndarray) -> np.ndarray:
    """Gland (small nuclei) or duct (``big``: large nuclei) lumina on a jittered grid inside the ROI, one at
    its centre, each ringed by nuclei added to ``impulses``; returns the lumina as rows (cx, cy, r)."""
    s = float(size)
    spacing = (16.0 if big else 11.0) * scale
    off = rng.uniform(0, spacing, 2)
    gx, gy = np.meshgrid(np.arange(off[0], s, spacing), np.arange(off[1], s, spacing))
    cand = np.stack([gx.ravel(), gy.ravel()], 1) + rng.uniform(-2, 2, (gx.size, 2)) * scale
    cand = np.clip(cand, 0, s - 1)
    keep = mask[cand[:, 1].round().astype(int), cand[:, 0].round().astype(int)] > 0
    cand = cand[keep]
    cand = cand[np.hypot(cand[:, 0] - centre[0], cand[:, 1] - centre[1]) > 0.8 * spacing]
    cand = np.concatenate([np.array([centre], np.float32), cand.astype(np.float32)])
    r_lumen = rng.uniform(2.2, 3.4, len(cand)) * scale if big else rng.uniform(1.8, 3.0, len(cand)) * scale
    lumina = np.concatenate([cand, r_lumen[:, None]], 1).astype(np.float32)
    first = _N_SMALL if big else 0
    n_kinds = _N_LARGE if big else _N_SMALL
    r_nuc = (2.6 if big else 1.25) * scale
    for cx_, cy_, rl in lumina:
        ring = rl + r_nuc + 0.3 * scale
        m = max(5, int(round(2 * math.pi * ring / (2 * r_nuc + (2.5 if big else 0.8) * scale))))
        ang = rng.uniform(0, 2 * math.pi) + 2 * math.pi * np.arange(m) / m + rng.normal(0, 0.08, m)
        px = np.clip(np.round(cx_ + ring * np.cos(ang)), 0, size - 1).astype(int)
        py = np.clip(np.round(cy_ + ring * np.sin(ang)), 0, size - 1).astype(int)
        np.add.at(impulses, (first + rng.integers(0, n_kinds, m), py, px), 1.0)
    return lumina


def _scatter_nuclei(rng: np.random.Generator, size: int, scale: float, pattern: str | None, mask: np.ndarray,
                    centre: tuple[int, int] | None, clustering: np.ndarray, impulses: np.ndarray) -> None:
    """Scattered nuclei added to ``impulses``: small ones in the background at a random density; large,
    clustered ones in a carcinoma ROI (same expected area fraction, one at its centre); sparser small ones
    in a gland or duct ROI."""
    _, areas = _kernels(scale)
    phi_bg = rng.uniform(0.06, 0.18)
    rate = np.full((size, size), phi_bg / areas[:_N_SMALL].mean(), np.float32)
    large = np.zeros((size, size), bool)
    if pattern == "carcinoma":
        phi_les = rng.uniform(0.06, 0.18)
        roi_area = max(float(mask.sum()), 1.0)
        r_les = max(phi_les / areas[_N_SMALL:].mean(), 5.0 / roi_area)
        clusters = np.clip(0.5 + 0.9 * clustering, 0.15, 1.6)
        rate = np.where(mask > 0, r_les * clusters, rate)
        large = mask > 0
        impulses[_N_SMALL + int(rng.integers(0, _N_LARGE)), centre[1], centre[0]] += 1.0
    elif pattern is not None:
        rate = np.where(mask > 0, 0.4 * rate, rate)
    hit = rng.random((size, size)) < rate
    kind = np.where(large, _N_SMALL + rng.integers(0, _N_LARGE, (size, size)),
                    rng.integers(0, _N_SMALL, (size, size)))
    ys, xs = np.nonzero(hit)
    np.add.at(impulses, (kind[ys, xs], ys, xs), 1.0)


def _stroma_and_stain(rng: np.random.Generator, size: int, scale: float, noise: np.ndarray, xx: np.ndarray,
                      yy: np.ndarray) -> dict[str, np.ndarray]:
    """Stroma intensity (oriented fibres warped by ``noise[1]``, slow variation ``noise[0]``, grain),
    chromatin texture, stain colours, per-channel gamma and pixel noise of one tile."""
    th = rng.uniform(0, math.pi)
    freq = rng.uniform(0.12, 0.22) / scale
    fibre = np.sin(2 * math.pi * freq * (xx * math.cos(th) + yy * math.sin(th)) + 2.5 * noise[1] * math.pi)
    grain = rng.standard_normal((size, size)).astype(np.float32)
    stroma = np.clip(0.5 + 0.14 * fibre + 0.2 * noise[0] + 0.06 * grain, 0.0, 1.0)
    colours = np.array([[0.96, 0.76, 0.86], [0.82, 0.42, 0.63], [0.40, 0.24, 0.58], [0.97, 0.92, 0.95]],
                       np.float32) + rng.uniform(-0.05, 0.05, (4, 3)).astype(np.float32)
    return {
        "stroma": stroma.astype(np.float32),
        "chromatin": rng.random((size, size)).astype(np.float32), "colours": np.clip(colours, 0, 1),
        "gamma": rng.uniform(0.85, 1.15, 3).astype(np.float32),
        "pixel_noise": rng.standard_normal((3, size, size)).astype(np.float32),
    }


def tile_layout(rng: np.random.Generator, size: int, pattern: str | None, roi_fraction: tuple[float, float],
            scale: float) -> dict[str, np.ndarray]:
    """Random layout of one tile: ROI mask, lumen coverage, nucleus impulses per stamp, stroma intensity,
    chromatin texture and stain colours (everything needing per-tile randomness). The helpers draw from
    ``rng`` in a fixed order, so a tile depends only on its generator's seed."""
    noise = _smooth_noise(rng, size, max(4, size // 8), 4)  # stroma, fibre warp, ROI border, clustering
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask, centre = np.zeros((size, size), np.float32), None
    if pattern is not None:
        mask, centre = _roi_mask(rng, size, roi_fraction, noise[2], xx, yy)
    holes = _holes(rng, size, scale, mask if pattern is not None else None, xx, yy)
    impulses = np.zeros((_N_SMALL + _N_LARGE, size, size), np.float32)
    lumina = np.zeros((0, 3), np.float32)
    if pattern in ("gland", "duct"):
        lumina = _glands(rng, size, scale, pattern == "duct", mask, centre, impulses)
    lumen = _disc_union(size, np.concatenate([holes[holes[:, 2] > 0].astype(np.float32), lumina]))
    _scatter_nuclei(rng, size, scale, pattern, mask, centre, noise[3], impulses)
    return {"mask": mask, "lumen": lumen, "impulses": impulses, **_stroma_and_stain(rng, size, scale, noise, xx, yy)}


def render_tiles(layouts: list[dict[str, np.ndarray]], scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-render layouts into 8-bit-quantized RGB images (B, 3, H, W) in [0, 1] and masks (B, H, W)."""
    def stack(key: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([lay[key] for lay in layouts]))

    bank, _ = _kernels(scale)
    impulses = stack("impulses")
    size, k = impulses.shape[-1], bank.shape[-1]
    # stamping = a convolution of the sparse impulse maps with the stamps; FFT is cheaper than direct here
    full = (size + k - 1, size + k - 1)
    spec = (torch.fft.rfft2(impulses, s=full) * torch.fft.rfft2(bank[:, 0], s=full)).sum(1, keepdim=True)
    nuclei = torch.fft.irfft2(spec, s=full)[..., k // 2:k // 2 + size, k // 2:k // 2 + size]
    lumen = stack("lumen").unsqueeze(1)
    nuclei = nuclei.clamp(0, 1) * (1 - lumen)
    nuclei = nuclei * (0.7 + 0.3 * stack("chromatin").unsqueeze(1))
    col = stack("colours")[:, :, :, None, None]  # (B, 4, 3, 1, 1): stroma light/dark, nucleus, lumen
    t = stack("stroma").unsqueeze(1)
    img = col[:, 0] * (1 - t) + col[:, 1] * t
    img = img * (1 - lumen) + col[:, 3] * lumen
    img = img * (1 - nuclei) + col[:, 2] * nuclei
    img = img.clamp(0, 1) ** stack("gamma")[:, :, None, None]
    img = (img + 0.012 * stack("pixel_noise")).clamp(0, 1)
    img = torch.round(img * 255) / 255
    return img, stack("mask")
