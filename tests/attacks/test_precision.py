"""Fast precision: attacks run in bf16 (or with TF32 / channels_last) and every result is verified in fp32 —
a reduced-precision adversarial that is not adversarial in fp32 is repaired or counted as a failure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advwsl.attacks import run_attack
from advwsl.attacks.precision import REPAIR_MAX, repair, wrap
from advwsl.errors import InputError


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(8 * 12 * 12, 10))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = SmallCNN().eval()
    x = (torch.rand(32, 1, 16, 16) * 255).round() / 255
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("precision, channels_last", [("bf16", False), ("bf16", True), ("tf32", True)])
def test_every_reported_success_holds_in_fp32(setup, precision, channels_last):
    model, x, y = setup
    result = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 30}, progress=False, precision=precision,
                        channels_last=channels_last, keep_adversarials=True)
    assert result.params["precision"] == precision and result.params["channels_last"] == channels_last
    with torch.no_grad():
        fp32 = model(result.adversarials).argmax(1).numpy()
    ok = result.success
    assert ok.mean() > 0.9
    assert (fp32[ok] != result.label[ok]).all()  # re-verified by the fp32 model
    assert torch.allclose((result.adversarials - x).flatten(1).norm(dim=1).double(),
                          torch.as_tensor(result.l2), atol=1e-6)
    assert all(p.is_contiguous() for p in model.parameters()) and not model.training  # left as found


def test_bf16_runs_close_to_fp32(setup):
    model, x, y = setup
    kw = dict(attack="ddn", attack_kwargs={"steps": 30}, progress=False)
    fp32 = run_attack(model, x, y, **kw).summary()
    bf16 = run_attack(model, x, y, precision="bf16", **kw).summary()
    assert bf16["success"] >= fp32["success"] - 0.05
    assert bf16["median_l2"] == pytest.approx(fp32["median_l2"], rel=0.05)


def test_repair_lengthens_a_too_short_perturbation():
    """A linear model: an adversarial shortened below the boundary is lengthened back across it, within the
    repair's largest factor; one that no factor repairs stays a failure."""
    w = torch.tensor([1.0, -1.0])
    x = torch.tensor([[0.6, 0.4], [0.6, 0.4]])  # logit margin 0.2, boundary at ||delta|| = 0.2 / sqrt(2)
    direction = torch.tensor([-1.0, 1.0]) / 2 ** 0.5
    adv = torch.stack([x[0] + 0.95 * 0.2 / 2 ** 0.5 * direction, x[1] + 0.5 * 0.2 / 2 ** 0.5 * direction])
    fixed, repaired = repair(x, adv, lambda c: (c @ w) < 0, (0.0, 1.0), None)
    assert repaired.tolist() == [True, False]
    assert float(fixed[0] @ w) < 0 and (fixed[0] - x[0]).norm() <= REPAIR_MAX * (adv[0] - x[0]).norm() + 1e-6
    assert torch.equal(fixed[1], adv[1])


def test_unknown_precision_is_refused(setup):
    model, x, y = setup
    with pytest.raises(InputError, match="precision must be one of fp32, tf32, bf16"):
        wrap(model, "fp16", False)
