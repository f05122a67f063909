"""The small reference networks of appendix V: the C&W MNIST and CIFAR-10 CNNs (Table A V-7) and
WRN-28-10 (Table A V-8). All take images in [0, 1] and return logits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .normalize import Normalize
from .zoo import register_model


class CWNet(nn.Module):
    """Table A V-7: conv-conv-pool-conv-conv-pool-fc-fc-fc with ReLU (softmax left to the loss).

    ``widths=(32, 64, 200)`` is the MNIST model, ``(64, 128, 256)`` the CIFAR-10 one. Works for any input
    size large enough for two 2x2 poolings after four unpadded 3x3 convolutions (>= 12 pixels).

    Weights start as in C&W's Keras models (Glorot-uniform, zero biases): with PyTorch's default
    initialization these nets sit at chance for epochs under C&W's SGD recipe (learning rate 0.01).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_size: int = 28,
                 widths: tuple[int, int, int] = (32, 64, 200), mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        c1, c2, fc = widths
        mean = mean if mean is not None else (0.0,) * in_channels
        std = std if std is not None else (1.0,) * in_channels
        self.normalize = Normalize(mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c1, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c2, 3), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"input_size={input_size} is too small for the C&W network (needs >= 12)")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, fc), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(fc, fc), nn.ReLU(inplace=True),
            nn.Linear(fc, num_classes),
        )
        self.num_classes = num_classes
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


@register_model("cw-mnist", task="classification", description="C&W MNIST CNN (Table A V-7), 28x28 grayscale")
def cw_mnist(num_classes: int = 10, input_size: int = 28, **kwargs) -> CWNet:
    return CWNet(1, num_classes, input_size, (32, 64, 200), **kwargs)


@register_model("cw-cifar", task="classification", description="C&W CIFAR-10 CNN (Table A V-7), 32x32 RGB")
def cw_cifar(num_classes: int = 10, input_size: int = 32, **kwargs) -> CWNet:
    kwargs.setdefault("mean", (0.4914, 0.4822, 0.4465))
    kwargs.setdefault("std", (0.2470, 0.2435, 0.2616))
    return CWNet(3, num_classes, input_size, (64, 128, 256), **kwargs)


class _WideBasic(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv x2) with a 1x1 conv shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = F.relu(self.bn2(o))
        if self.dropout > 0:
            o = F.dropout(o, self.dropout, self.training)
        return self.conv2(o) + shortcut


class WideResNet(nn.Module):
    """WRN-depth-k (Table A V-8 for depth 28, k 10): conv 16, three groups of (depth-4)/6 basic blocks of
    widths 16k, 32k, 64k (strides 1, 2, 2), BN-ReLU, global average pooling, linear."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, dropout: float = 0.0,
                 in_channels: int = 3, mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
                 std: Sequence[float] = (0.2470, 0.2435, 0.2616)) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = Normalize(mean, std)
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        cin = widths[0]
        for g, stride in enumerate((1, 2, 2)):
            for b in range(n):
                layers.append(_WideBasic(cin, widths[g + 1], stride if b == 0 else 1, dropout))
                cin = widths[g + 1]
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        self.num_classes = num_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.blocks(self.conv(self.normalize(x)))
        o = F.relu(self.bn(o))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(o, 1), 1))


@register_model("wrn-28-10", task="classification", description="Wide ResNet 28-10 (Table A V-8), 32x32 RGB")
def wrn_28_10(num_classes: int = 10, **kwargs) -> WideResNet:
    return WideResNet(28, 10, num_classes, **kwargs)
