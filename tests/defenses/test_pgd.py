"""PGD-L2 (the inner maximization of eq. A V-7): closed form on a linear model, budget and box, lattice,
model state, determinism and bad inputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advwsl.attacks.pgd import pgd_l2, project_l2_ball, quantize_toward, random_l2_ball
from advwsl.errors import InputError


class Linear2(nn.Module):
    """Two-class linear model: logits (0, w.x + b); its loss is maximized by moving along -w (class 1)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(x.flatten(1))
        return torch.cat([torch.zeros_like(z), z], dim=1)


def _linear(d=48, seed=0):
    torch.manual_seed(seed)
    model = Linear2(d)
    with torch.no_grad():
        model.fc.weight.normal_()
        model.fc.bias.fill_(0.3)
    return model


def test_linear_closed_form_optimum():
    model = _linear()
    x = torch.full((5, 3, 4, 4), 0.5) + 0.05 * torch.randn(5, 3, 4, 4)
    y = torch.ones(5, dtype=torch.long)
    eps = 0.3  # small enough that the box [0, 1] is never reached
    w = model.fc.weight.detach().flatten()
    margin = model(x)[:, 1].detach()
    # the loss of class 1 is maximal at x - eps w/||w||: margin drops by exactly eps ||w||
    expected = margin - eps * w.norm()
    # from x, every normalized gradient step is along -w: exact once steps * step_size >= eps
    adv = pgd_l2(model, x, y, epsilon=eps, steps=30, random_start=False)
    torch.testing.assert_close(model(adv)[:, 1].detach(), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close((adv - x).flatten(1).norm(dim=1), torch.full((5,), eps), atol=1e-5, rtol=0)
    # from a random start the direction converges to -w geometrically on the sphere
    adv = pgd_l2(model, x, y, epsilon=eps, steps=50, step_size=eps / 2, generator=torch.Generator().manual_seed(0))
    gap = (model(adv)[:, 1].detach() - expected) / (eps * w.norm())
    assert gap.max() < 1e-4, gap


def test_targeted_moves_toward_target():
    model = _linear()
    x = torch.full((4, 48), 0.5)
    target = torch.zeros(4, dtype=torch.long)
    adv = pgd_l2(model, x, target, targeted=True, epsilon=0.5, steps=20)
    assert (model(adv)[:, 1] < model(x)[:, 1]).all()
    assert torch.allclose((adv - x).norm(dim=1), torch.full((4,), 0.5), atol=1e-5)


def test_budget_box_and_inputs_untouched():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.rand(16, 1, 8, 8)
    x[:4] = 0.0  # pixels at the box edge
    x0 = x.clone()
    y = torch.randint(0, 10, (16,))
    adv = pgd_l2(model, x, y, epsilon=1.5, steps=10)
    assert torch.equal(x, x0)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 1.5 + 1e-5
    assert adv.min() >= 0 and adv.max() <= 1


def test_quantized_on_lattice_and_inside_ball():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.round(torch.rand(8, 1, 8, 8) * 255) / 255
    y = torch.randint(0, 10, (8,))
    adv = pgd_l2(model, x, y, epsilon=0.7, steps=5, levels=256)
    assert torch.allclose(adv * 255, torch.round(adv * 255), atol=1e-4)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 0.7 + 1e-5


def test_quantize_toward_never_increases_pixel_distance():
    torch.manual_seed(3)
    x = torch.round(torch.rand(4, 100) * 255) / 255
    adv = (x + 0.02 * torch.randn(4, 100)).clamp(0, 1)
    q = quantize_toward(x, adv, 256)
    assert ((q - x).abs() <= (adv - x).abs() + 1e-7).all()
    assert torch.allclose(q * 255, torch.round(q * 255), atol=1e-4)


def test_model_state_restored_and_no_parameter_grads():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    model.train()
    model[1].weight.requires_grad_(False)
    running = model[2].running_mean.clone()
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    pgd_l2(model, x, y, epsilon=1.0, steps=3)
    assert model.training and all(m.training for m in model.modules())
    assert not model[1].weight.requires_grad and model[4].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[2].running_mean, running)  # attacked in eval mode: BN statistics untouched


def test_random_start_reproducible_and_uniform_in_ball():
    model = _linear(d=16)
    x, y = torch.full((3, 16), 0.5), torch.ones(3, dtype=torch.long)
    a = pgd_l2(model, x, y, epsilon=0.4, steps=2, generator=torch.Generator().manual_seed(7))
    b = pgd_l2(model, x, y, epsilon=0.4, steps=2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    d = 10
    r = random_l2_ball(torch.zeros(20000, d), 2.0, torch.Generator().manual_seed(0)).norm(dim=1)
    assert r.max() <= 2.0 + 1e-6
    # radius of a uniform point of the d-ball: E[r] = eps * d / (d + 1)
    assert abs(r.mean().item() - 2.0 * d / (d + 1)) < 0.01


def test_project_l2_ball_per_sample_radius():
    delta = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    out = project_l2_ball(delta, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(out, torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": -1.0}, "epsilon"),
    ({"epsilon": 1.0, "steps": 0}, "steps"),
    ({"epsilon": 1.0, "levels": 1}, "levels"),
])
def test_bad_arguments(kwargs, message):
    model = _linear(d=4)
    with pytest.raises(InputError, match=message):
        pgd_l2(model, torch.rand(2, 4), torch.ones(2, dtype=torch.long), **kwargs)


def test_bad_inputs():
    model = _linear(d=4)
    with pytest.raises(InputError, match="within bounds.*divide by 255"):
        pgd_l2(model, torch.rand(2, 4) * 255, torch.ones(2, dtype=torch.long), epsilon=1.0)
    with pytest.raises(InputError, match="labels"):
        pgd_l2(model, torch.rand(2, 4), torch.ones(3, dtype=torch.long), epsilon=1.0)
