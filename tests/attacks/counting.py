"""A model wrapper that counts the work an attack asks of it, and a small CNN trained on the scikit-learn
digits, shared by the C&W and DeepFool tests."""

from __future__ import annotations

import torch
from torch import nn


class Counting(nn.Module):
    """``model`` with counters: ``calls`` forward passes and ``rows`` images forwarded in total."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.model(x)


def train_digits_cnn(n_test: int = 48) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small CNN trained on the scikit-learn digits (16 x 16, a few seconds), and the first ``n_test``
    correctly classified test images with their labels."""
    from advwsl.data.digits import sklearn_digits
    from advwsl.pretrained.digits import train_classifier

    torch.manual_seed(0)
    x, y = sklearn_digits(16, "train")
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10))
    model = train_classifier(net, x, y, epochs=3, lr=5e-3)
    xt, yt = sklearn_digits(16, "test")
    with torch.no_grad():
        keep = model(xt).argmax(1) == yt
    assert keep.float().mean() > 0.8
    return model, xt[keep][:n_test], yt[keep][:n_test]
