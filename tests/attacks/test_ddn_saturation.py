"""DDN's cross-entropy direction when float32 softmax saturates (p_y rounds to exactly 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from advwsl.attacks.ddn import _objective, ddn


class _SaturatedLinear(nn.Module):
    """z_0 = 100 x_0 - 30, z_1 = 50 x_0: class 0 wins by 15-20 logits at x_0 in [0.9, 1], and the
    minimal L2 adversarial moves x_0 down to 0.6 (raising x_0 only widens the margin)."""

    def __init__(self) -> None:
        super().__init__()
        w = torch.zeros(2, 4)
        w[0, 0], w[1, 0] = 100.0, 50.0
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.tensor([-30.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T + self.b


def test_ce_objective_equals_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(7, 5, dtype=torch.float64) * 4
    labels = torch.randint(0, 5, (7,))
    expected = F.cross_entropy(logits, labels, reduction="sum")
    torch.testing.assert_close(_objective(logits, labels, "ce"), expected)


def test_ddn_reaches_the_optimum_when_softmax_saturates():
    model = _SaturatedLinear().eval()
    x = torch.full((3, 1, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.9, 0.95, 1.0])
    labels = model(x).argmax(1)
    assert labels.tolist() == [0, 0, 0]
    assert (F.softmax(model(x), 1)[1:, 0] == 1.0).all()  # saturated in float32
    adv = ddn(model, x, labels, steps=100, levels=None)
    assert (model(adv).argmax(1) != labels).all()
    norms = (adv - x).flatten(1).norm(dim=1)
    optimum = x[:, 0, 0, 0] - 0.6
    assert torch.all(norms <= optimum * 1.005 + 1e-6)
