"""U-Net (Ronneberger et al. 2015), the fully supervised upper bound of chapter 2 (section 2.1.3.2):
trained on pixel-level annotations, it returns per-pixel logits ``(N, C, H, W)`` at the input size."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .zoo import register_model


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch normalization and ReLU. Padding keeps the size, so
    the output matches the input without the cropping of the original (unpadded) U-Net."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Encoder of ``depth`` 2x2 max-poolings with widths ``base_width * 2**i``, a symmetric decoder of
    2x2 transposed convolutions concatenated with the encoder's skip connections, and a 1x1 convolution
    to ``num_classes`` logits per pixel.

    Any input size of at least ``2**depth`` works: when a size is not divisible, the upsampled maps are
    padded to the size of their skip connection.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, *, base_width: int = 64, depth: int = 4,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or base_width < 1 or depth < 1:
            raise InputError(f"U-Net needs positive num_classes, in_channels, base_width and depth, got "
                             f"{num_classes}, {in_channels}, {base_width}, {depth}")
        if mean is None:
            mean = IMAGENET_MEAN if in_channels == 3 else (0.0,) * in_channels
        if std is None:
            std = IMAGENET_STD if in_channels == 3 else (1.0,) * in_channels
        self.normalize = Normalize(mean, std)
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList([_double_conv(in_channels, widths[0])])
        self.encoder.extend(_double_conv(widths[i], widths[i + 1]) for i in range(depth))
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in reversed(range(depth)))
        self.decoder = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.depth = depth
        self.stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise InputError(f"expected images (N, {self.in_channels}, H, W) in [0, 1], got {tuple(x.shape)}")
        if min(x.shape[2:]) < 2**self.depth:
            raise InputError(f"U-Net of depth {self.depth} needs images of at least {2**self.depth} pixels, "
                             f"got {tuple(x.shape[2:])}")
        skips = []
        h = self.normalize(x)
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else F.max_pool2d(h, 2))
            skips.append(h)
        skips.pop()
        for up, block in zip(self.upsample, self.decoder):
            skip = skips.pop()
            h = up(h)
            dh, dw = skip.shape[2] - h.shape[2], skip.shape[3] - h.shape[3]
            if dh or dw:
                h = F.pad(h, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
            h = block(torch.cat([skip, h], dim=1))
        return self.classifier(h)


@register_model("unet", task="segmentation",
                description="U-Net, the fully supervised bound of chapter 2 (per-pixel logits)")
def unet(num_classes: int = 2, in_channels: int = 3, *, base_width: int = 64, depth: int = 4,
         mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> UNet:
    return UNet(num_classes, in_channels, base_width=base_width, depth=depth, mean=mean, std=std)
