"""FMN-L2 (Pintor et al., NeurIPS 2021): closed forms on linear models, schedules, contracts, agreement with
adv_lib's FMN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advwsl.attacks import fmn, quantize
from advwsl.attacks.fmn import fmn_schedules
from advwsl.errors import InputError
from linear_models import binary_inputs, central_inputs, l2, linear_model, optimal_binary_targeted, optimal_untargeted
from peers import adv_lib_attacks
from test_ddn import _Affine

CASES = [(1, (1, 8, 8)), (3, (3, 6, 6)), (16, (2, 50))]


@pytest.mark.parametrize("batch, shape", CASES)
@pytest.mark.parametrize("targeted", [False, True])
def test_binary_linear_closed_form(batch, shape, targeted):
    model = linear_model(2, shape)
    x = binary_inputs(model, batch, shape)
    pred = model(x).argmax(1)
    labels = 1 - pred if targeted else pred
    opt = optimal_binary_targeted(model, x, labels) if targeted else optimal_untargeted(model, x, labels)
    adv = fmn(model, x, labels, targeted=targeted, levels=None)
    adv_pred = model(adv).argmax(1)
    assert bool((adv_pred == labels).all() if targeted else (adv_pred != labels).all())
    ratio = l2(adv, x) / opt
    assert ratio.min() >= 1 - 1e-4  # nothing beats the optimum
    assert ratio.max() <= 1.001


def test_ten_class_linear_untargeted_and_targeted():
    model = linear_model(10, (3, 6, 6), scale=0.1)
    x = central_inputs(16, (3, 6, 6))
    y = model(x).argmax(1)
    opt = optimal_untargeted(model, x, y)
    adv = fmn(model, x, y, levels=None)
    assert bool((model(adv).argmax(1) != y).all())
    assert (l2(adv, x) / opt).median() <= 1.001 and (l2(adv, x) / opt).max() <= 1.1
    target = (y + 3) % 10
    adv = fmn(model, x, target, targeted=True, levels=None)
    assert bool((model(adv).argmax(1) == target).all())
    assert bool((l2(adv, x) >= opt * (1 - 1e-4)).all())


def test_quantized_on_lattice_adversarial_and_near_optimal():
    model = linear_model(10, (1, 6, 6), scale=0.3)
    x = quantize(central_inputs(12, (1, 6, 6)), 256)
    y = model(x).argmax(1)
    adv = fmn(model, x, y, steps=50)
    assert torch.equal(adv, quantize(adv, 256))
    assert bool((model(adv).argmax(1) != y).all())  # the authors' epsilon update alone stalls on a third
    assert (l2(adv, x) / optimal_untargeted(model, x, y)).max() <= 1.01


def test_inputs_model_state_and_failures():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(16, 10))
    model.train()
    model[1].weight.requires_grad_(False)
    model[5].weight.grad = torch.ones_like(model[5].weight)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(6, 3, 4, 4)
    x_copy = x.clone()
    fmn(model, x, torch.arange(6), steps=10)
    assert torch.equal(x, x_copy)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
    assert torch.equal(model[5].weight.grad, torch.ones_like(model[5].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "5.weight")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_misclassified_and_unreachable_returned_unchanged():
    model = linear_model(10, (1, 4, 4))
    x = central_inputs(8, (1, 4, 4))
    pred = model(x).argmax(1)
    wrong = pred.clone()
    wrong[::2] = (pred[::2] + 1) % 10
    adv = fmn(model, x, wrong, steps=20)
    assert torch.equal(adv[::2], x[::2]) and bool((l2(adv[1::2], x[1::2]) > 0).all())
    flat = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))  # constant logits: nothing is reachable
    flat[1].weight.data.zero_()
    flat[1].bias.data = torch.tensor([1.0, 0.0])
    out = fmn(flat, x, torch.zeros(8, dtype=torch.long), steps=5)
    assert torch.equal(out, x)


def test_bounds_respected_and_scale_equivariant():
    model = linear_model(10, (3, 4, 4))
    x = quantize(central_inputs(8, (3, 4, 4)), 256)
    y = model(x).argmax(1)
    ref = fmn(model, x, y)
    assert bool((ref >= 0).all() and (ref <= 1).all())
    out = fmn(nn.Sequential(_Affine(0.5, 0.5), model), 2 * x - 1, y, bounds=(-1.0, 1.0))
    assert bool((out >= -1).all() and (out <= 1).all())
    torch.testing.assert_close(out, 2 * ref - 1, atol=1e-5, rtol=0)


def test_starting_points_boundary_search():
    model = linear_model(2, (1, 8, 8))
    x = binary_inputs(model, 8, (1, 8, 8))
    y = model(x).argmax(1)
    far = fmn(model, x, y, steps=3, levels=None)  # a few steps: adversarial, not minimal
    adv = fmn(model, x, y, steps=10, levels=None, starting_points=far)
    opt = optimal_untargeted(model, x, y)
    assert bool((model(adv).argmax(1) != y).all())
    assert (l2(adv, x) / opt).max() <= 1.001
    assert bool((l2(adv, x) <= l2(far, x) + 1e-6).all())


def test_schedules_are_the_authors():
    sched = fmn_schedules(100, 1.0, 0.01, 0.05, 0.001)
    assert sched[0] == pytest.approx((1.0, 0.05))
    assert all(a >= b for (a, _), (b, _) in zip(sched, sched[1:]))
    assert sched[50] == pytest.approx((0.505, 0.0255))  # cos(pi / 2) = 0: the midpoint of both
    assert sched[-1][0] > 0.01 and sched[-1][1] > 0.001  # K steps of (1 + cos(pi k / K)) / 2 stop short


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"gamma_init": 1.0}, "gamma_init must be below 1"),
    ({"alpha_init": -1}, "alpha_init must be a positive"),
    ({"levels": 1}, "levels must be an integer >= 2"),
    ({"starting_points": torch.rand(3, 4)}, "starting_points must be a tensor"),
    ({"bounds": (1, 0)}, "lower < upper"),
])
def test_bad_hyper_parameters(kwargs, message):
    with pytest.raises(InputError, match=message):
        fmn(linear_model(2, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), **kwargs)


def test_digits_cnn_no_worse_than_adv_lib(digits):
    attacks = adv_lib_attacks()
    model, x, y = digits
    theirs = attacks.fmn(model, x, y, norm=2, steps=100)
    ours = fmn(model, x, y, levels=None)
    with torch.no_grad():
        assert bool((model(ours).argmax(1) != y).all())
        theirs_ok = model(theirs).argmax(1) != y
    theirs_norms = torch.where(theirs_ok, l2(theirs, x), torch.full_like(y, float("inf"), dtype=x.dtype))
    assert float(l2(ours, x).median()) <= 1.02 * float(theirs_norms.median())
