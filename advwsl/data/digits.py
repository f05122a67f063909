"""Real digit images available offline: the 8x8 digits scikit-learn ships (1,797 images, 10 classes),
upsampled to a CNN-friendly size; and MNIST / CIFAR-10 / ImageNet through torchvision when on disk."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def sklearn_digits(size: int = 16, split: str | None = None, *, test_fraction: float = 0.25,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The scikit-learn digits as ``(images (N, 1, size, size) in [0, 1], labels (N,))``.

    Pixel values 0..16 are scaled to [0, 1] and upsampled bilinearly to ``size``, then quantized to 8 bits
    so the images lie on the 256-level lattice like real image files. ``split`` = ``"train"`` / ``"test"``
    returns a seeded stratified split (``test_fraction`` of each class in test); ``None`` returns all.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 255).round() / 255
    y = torch.from_numpy(bunch.target.astype(np.int64))
    if split is None:
        return x, y
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(bunch.target == c)
        rng.shuffle(idx)
        test_idx.extend(idx[: int(round(test_fraction * len(idx)))].tolist())
    mask = np.zeros(len(y), dtype=bool)
    mask[test_idx] = True
    sel = torch.from_numpy(mask if split == "test" else ~mask)
    return x[sel], y[sel]
