"""FAB-L2 (Croce & Hein, ICML 2020): the hyperplane-box projection against bisection, closed forms on linear
models, contracts, agreement with adv_lib's FAB."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advwsl.attacks import fab, quantize
from advwsl.attacks.fab import project_onto_hyperplane_box
from advwsl.errors import InputError
from linear_models import binary_inputs, central_inputs, l2, linear_model, optimal_binary_targeted, optimal_untargeted
from peers import adv_lib_attacks
from test_ddn import _Affine

CASES = [(1, (1, 8, 8)), (3, (3, 6, 6)), (16, (2, 50))]


def _bisection_projection(p, w, c, lo, hi):
    """The same projection by 200 bisections on the multiplier, in float64."""
    sign = torch.where(c < 0, -1.0, 1.0).double()
    w, c = w * sign[:, None], c * sign
    lower, upper = lo - p, hi - p

    def reach(lam):
        return -(w * torch.minimum(torch.maximum(-lam[:, None] * w, lower), upper)).sum(1)

    a, b = torch.zeros_like(c), torch.full_like(c, 1e6)
    for _ in range(200):
        m = (a + b) / 2
        far = reach(m) >= c
        a, b = torch.where(far, a, m), torch.where(far, m, b)
    return torch.minimum(torch.maximum(-b[:, None] * w, lower), upper)


def test_projection_matches_bisection_and_is_feasible():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(200, 30, generator=g, dtype=torch.float64)
    w = torch.randn(200, 30, generator=g, dtype=torch.float64)
    w[:, :5] = 0  # coordinates that cannot move
    c = torch.randn(200, generator=g, dtype=torch.float64) * 6  # some planes miss the box
    d = project_onto_hyperplane_box(p, w, c, 0.0, 1.0)
    assert bool((p + d >= 0).all() and (p + d <= 1).all()) and bool((d[:, :5] == 0).all())
    torch.testing.assert_close(d, _bisection_projection(p, w, c, 0.0, 1.0), atol=1e-9, rtol=0)
    met = ((w * d).sum(1) + c).abs() < 1e-9
    assert 0.5 < float(met.float().mean()) < 1  # both cases occur; where missed, the corner farthest along -w
    assert torch.equal(project_onto_hyperplane_box(p, torch.zeros_like(w), c, 0.0, 1.0), torch.zeros_like(p))
    d32 = project_onto_hyperplane_box(p.float(), w.float(), c.float(), 0.0, 1.0)
    assert d32.dtype == torch.float32 and float((d32.double() - d).abs().max()) < 1e-5


@pytest.mark.parametrize("batch, shape", CASES)
@pytest.mark.parametrize("targeted", [False, True])
def test_binary_linear_closed_form(batch, shape, targeted):
    model = linear_model(2, shape)
    x = binary_inputs(model, batch, shape)
    pred = model(x).argmax(1)
    labels = 1 - pred if targeted else pred
    opt = optimal_binary_targeted(model, x, labels) if targeted else optimal_untargeted(model, x, labels)
    adv = fab(model, x, labels, targeted=targeted, levels=None)
    adv_pred = model(adv).argmax(1)
    assert bool((adv_pred == labels).all() if targeted else (adv_pred != labels).all())
    ratio = l2(adv, x) / opt
    assert ratio.min() >= 1 - 1e-4
    assert ratio.max() <= 1.001
    no_search = l2(fab(model, x, labels, targeted=targeted, levels=None, final_search=0), x) / opt
    assert bool((no_search <= 1.006).all() and (no_search >= ratio - 1e-6).all())  # eta = 1.05 overshoots


def test_ten_class_linear_untargeted_targeted_and_candidates():
    model = linear_model(10, (3, 6, 6), scale=0.1)
    x = central_inputs(16, (3, 6, 6))
    y = model(x).argmax(1)
    opt = optimal_untargeted(model, x, y)
    adv = fab(model, x, y, levels=None)
    assert bool((model(adv).argmax(1) != y).all())
    assert (l2(adv, x) / opt).median() <= 1.001 and (l2(adv, x) / opt).max() <= 1.01
    few = fab(model, x, y, levels=None, candidates=3)  # the nearest plane among 2 classes only: no closer
    assert bool((model(few).argmax(1) != y).all()) and bool((l2(few, x) >= l2(adv, x) * (1 - 1e-3)).all())
    target = (y + 3) % 10
    adv = fab(model, x, target, targeted=True, levels=None)
    assert bool((model(adv).argmax(1) == target).all())
    assert bool((l2(adv, x) >= opt * (1 - 1e-4)).all())


def test_quantized_on_lattice_and_near_optimal():
    model = linear_model(10, (1, 6, 6), scale=0.3)
    x = quantize(central_inputs(12, (1, 6, 6)), 256)
    y = model(x).argmax(1)
    adv = fab(model, x, y, steps=20)
    assert torch.equal(adv, quantize(adv, 256))
    assert bool((model(adv).argmax(1) != y).all())
    assert (l2(adv, x) / optimal_untargeted(model, x, y)).max() <= 1.02


def test_inputs_model_state_and_failures():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(16, 10))
    model.train()
    model[1].weight.requires_grad_(False)
    model[5].weight.grad = torch.ones_like(model[5].weight)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(6, 3, 4, 4)
    x_copy = x.clone()
    fab(model, x, torch.arange(6), steps=5, restarts=2, seed=0)
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
    adv = fab(model, x, wrong, steps=10)
    assert torch.equal(adv[::2], x[::2]) and bool((l2(adv[1::2], x[1::2]) > 0).all())
    far = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))  # the boundary lies outside the box
    far[1].weight.data = torch.stack([torch.zeros(16), torch.full((16,), 0.1)])
    far[1].bias.data = torch.tensor([5.0, 0.0])
    out = fab(far, x, torch.zeros(8, dtype=torch.long), steps=5, restarts=2, seed=0)
    assert torch.equal(out, x)


def test_bounds_and_restarts():
    model = linear_model(10, (3, 4, 4))
    x = quantize(central_inputs(8, (3, 4, 4)), 256)
    y = model(x).argmax(1)
    ref = fab(model, x, y, steps=30, levels=None)
    out = fab(nn.Sequential(_Affine(0.5, 0.5), model), 2 * x - 1, y, steps=30, bounds=(-1.0, 1.0), levels=None)
    assert bool((out >= -1).all() and (out <= 1).all())
    torch.testing.assert_close(out, 2 * ref - 1, atol=1e-4, rtol=0)
    more = fab(model, x, y, steps=30, levels=None, restarts=3, seed=0)  # restarts only keep a smaller one
    assert bool((l2(more, x) <= l2(ref, x) + 1e-6).all())
    assert torch.equal(more, fab(model, x, y, steps=30, levels=None, restarts=3, seed=0))


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"restarts": 0}, "restarts must be an integer >= 1"),
    ({"alpha_max": 2.0}, "alpha_max must be in"),
    ({"beta": 0.0}, "beta must be in"),
    ({"candidates": 1}, "candidates must be an integer >= 2"),
    ({"final_search": -1}, "final_search must be an integer >= 0"),
    ({"levels": 1}, "levels must be an integer >= 2"),
])
def test_bad_hyper_parameters(kwargs, message):
    with pytest.raises(InputError, match=message):
        fab(linear_model(2, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), **kwargs)


def test_digits_cnn_no_worse_than_adv_lib(digits):
    attacks = adv_lib_attacks()
    model, x, y = digits
    theirs = attacks.fab(model, x, y, norm=2, n_iter=50)
    ours = fab(model, x, y, steps=50, levels=None)
    with torch.no_grad():
        assert bool((model(ours).argmax(1) != y).all())
        theirs_ok = model(theirs).argmax(1) != y
    theirs_norms = torch.where(theirs_ok, l2(theirs, x), torch.full_like(y, float("inf"), dtype=x.dtype))
    assert float(l2(ours, x).median()) <= 1.02 * float(theirs_norms.median())
