"""Slides and models with known answers for the slide tests.

Slides are toy slides (advwsl.data.camelyon16.toy) whose pixels the layout's renderer gives exactly.
``RedModel`` is linear in the red channel: its CAM of class 1 is ``k (t - red)`` per pixel (a 1 x 1
convolution), averaged over ``stride x stride`` blocks, and its class-1 logit is the CAM's mean (class 0: 0).
Tumour (red 150) scores positive, tissue (226) and glass (244) negative, and the minimal L2 norm that flips
a tile of side T is ``|logit| T / k`` (the gradient of the mean of ``T^2`` red values has norm ``k / T``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from torch import nn

from advwsl.data.camelyon16.toy import make_toy_slide, toy_layout

SIZE = (1024, 768)
MPP = 0.25


class RedModel(nn.Module):
    """See the module docstring."""

    def __init__(self, stride: int = 1, k: float = 20.0, t: float = 0.75) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.bias.zero_()
            self.conv.weight[1, 0] = -k
            self.conv.bias[1] = k * t
        self.stride, self.k = stride, k

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.conv(x)
        if self.stride > 1:
            c = F.avg_pool2d(c, self.stride)
        return c.mean(dim=(2, 3)), c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cams(x)[0]


def layout(seed: int = 0):
    return toy_layout(SIZE, seed=seed)


def write_slides(root: Path) -> dict[str, Path]:
    """The fixtures: a 4-level pyramid (tile 128, mpp 0.25), a single-level tiled slide, a single-level slide
    in strips, an Aperio .svs and a pyramid without resolution tags, all of the same toy layout."""
    paths = {name: root / name for name in ("pyramid.tif", "single.tif", "strips.tif", "slide.svs", "nompp.tif")}
    make_toy_slide(paths["pyramid.tif"], size=SIZE, levels=4, tile=128, mpp=MPP)
    make_toy_slide(paths["single.tif"], size=SIZE, levels=1, tile=128, mpp=MPP)
    make_toy_slide(paths["slide.svs"], size=SIZE, levels=3, tile=128, mpp=MPP)
    make_toy_slide(paths["nompp.tif"], size=SIZE, levels=3, tile=128)
    full = layout().render(0, 0, *SIZE)
    tifffile.imwrite(paths["strips.tif"], full, photometric="rgb", rowsperstrip=40, metadata=None,
                     resolution=(25400 / MPP, 25400 / MPP), resolutionunit="INCH")
    return paths


def block_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of (H, W, ...) (H and W multiples of f)."""
    h, w = image.shape[:2]
    return image.reshape(h // f, f, w // f, f, *image.shape[2:]).mean(axis=(1, 3))
