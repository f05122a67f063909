"""APGD-L2 (Croce & Hein, ICML 2020) with CE and DLR losses, and APGD-T: robust accuracy on linear models
against the closed form, the checkpoints, the losses, contracts, agreement with adv_lib and torchattacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advwsl.attacks import apgd, apgd_t, quantize
from advwsl.attacks.apgd import apgd_checkpoints, dlr_loss, targeted_dlr_loss
from advwsl.errors import InputError
from linear_models import binary_inputs, central_inputs, l2, linear_model, optimal_untargeted
from peers import adv_lib_attacks, torchattacks


def _robust(model, x, y, adv):
    with torch.no_grad():
        return model(adv).argmax(1) == y


@pytest.mark.parametrize("epsilon", [0.3, 0.6, 0.9])
def test_binary_linear_robust_accuracy_is_the_closed_form(epsilon):
    shape = (2, 50)
    model = linear_model(2, shape)
    x = binary_inputs(model, 32, shape)  # minimal norms spread over [0.1, 1]
    y = model(x).argmax(1)
    opt = optimal_untargeted(model, x, y)
    adv = apgd(model, x, y, epsilon=epsilon, steps=20, seed=0)
    assert torch.equal(_robust(model, x, y, adv), opt > epsilon)
    assert bool((l2(adv, x) <= epsilon * (1 + 1e-5)).all())
    assert bool((adv >= 0).all() and (adv <= 1).all())


@pytest.mark.parametrize("epsilon", [0.5, 0.6, 0.7])
def test_ten_class_linear_apgd_t_is_the_closed_form_and_others_bound_it(epsilon):
    model = linear_model(10, (3, 6, 6), scale=0.1)  # close logits: the CE direction is a mixture
    x = central_inputs(64, (3, 6, 6))
    y = model(x).argmax(1)
    truth = optimal_untargeted(model, x, y) > epsilon
    targeted = apgd_t(model, x, y, epsilon=epsilon, steps=20, seed=0)
    assert torch.equal(_robust(model, x, y, targeted), truth)  # the nearest boundary is among the 9 targets
    for loss in ("ce", "dlr"):
        robust = _robust(model, x, y, apgd(model, x, y, epsilon=epsilon, loss=loss, seed=0))
        assert bool((robust | ~truth).all())  # never finds what does not exist: an upper bound
    assert bool((l2(targeted, x) <= epsilon * (1 + 1e-5)).all())


def test_targeted_reaches_the_target_where_the_closed_form_allows():
    model = linear_model(2, (1, 8, 8))
    x = binary_inputs(model, 16, (1, 8, 8))
    target = 1 - model(x).argmax(1)
    opt = optimal_untargeted(model, x, 1 - target)
    for loss in ("ce",):
        adv = apgd(model, x, target, targeted=True, epsilon=0.5, loss=loss, steps=20, seed=0)
        with torch.no_grad():
            assert torch.equal(model(adv).argmax(1) == target, opt <= 0.5)
    model = linear_model(10, (3, 6, 6), scale=0.1)
    x = central_inputs(16, (3, 6, 6))
    target = (model(x).argmax(1) + 1) % 10
    adv = apgd(model, x, target, targeted=True, epsilon=2.0, loss="dlr", steps=30, seed=0)
    assert bool((model(adv).argmax(1) == target).all())


def test_checkpoints_follow_the_paper():
    checks = apgd_checkpoints(100)
    assert list(checks) == [21, 40, 56, 69, 79, 86, 92, 98]  # w_1 = 22, periods 22, 19, 16, ..., >= 6
    assert list(checks.values()) == [22, 19, 16, 13, 10, 7, 6, 6]
    assert apgd_checkpoints(1) == {0: 1}


def test_dlr_losses_are_shift_and_scale_invariant():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 10, generator=g)
    y, t = torch.arange(8), (torch.arange(8) + 1) % 10
    torch.testing.assert_close(dlr_loss(3 * z + 7, y), dlr_loss(z, y))
    torch.testing.assert_close(targeted_dlr_loss(3 * z + 7, y, t), targeted_dlr_loss(z, y, t))
    top = z.sort(1, descending=True).values
    own = z[torch.arange(8), y]
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    torch.testing.assert_close(dlr_loss(z, y), -(own - other) / (top[:, 0] - top[:, 2]))


def test_quantized_within_epsilon_on_lattice():
    model = linear_model(2, (1, 8, 8))
    x = quantize(binary_inputs(model, 16, (1, 8, 8)), 256)
    y = model(x).argmax(1)
    adv = apgd(model, x, y, epsilon=0.6, steps=20, levels=256, seed=0)
    assert torch.equal(adv, quantize(adv, 256))
    assert bool((l2(adv, x) <= 0.6 + 1e-5).all())
    exact = optimal_untargeted(model, x, y) < 0.55  # clear of rounding
    assert bool((~_robust(model, x, y, adv))[exact].all())


def test_inputs_model_state_failures_and_seed():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(16, 10))
    model.train()
    model[1].weight.requires_grad_(False)
    model[5].weight.grad = torch.ones_like(model[5].weight)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(6, 3, 4, 4)
    x_copy = x.clone()
    for attack in (apgd, apgd_t):
        attack(model, x, torch.arange(6), epsilon=0.5, steps=5, restarts=2, seed=0)
    assert torch.equal(x, x_copy)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
    assert torch.equal(model[5].weight.grad, torch.ones_like(model[5].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "5.weight")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    lin = linear_model(10, (1, 4, 4))
    xs = central_inputs(8, (1, 4, 4))
    y = lin(xs).argmax(1)
    wrong = y.clone()
    wrong[::2] = (y[::2] + 1) % 10
    adv = apgd(lin, xs, wrong, epsilon=0.01, seed=0)  # misclassified: unchanged; too small: unchanged
    assert torch.equal(adv, xs)
    a, b = apgd(lin, xs, y, epsilon=0.3, seed=1), apgd(lin, xs, y, epsilon=0.3, seed=1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": 0.0}, "epsilon must be a positive"),
    ({"epsilon": 1.0, "steps": 0}, "steps must be an integer >= 1"),
    ({"epsilon": 1.0, "restarts": 0}, "restarts must be an integer >= 1"),
    ({"epsilon": 1.0, "loss": "hinge"}, "loss must be one of"),
    ({"epsilon": 1.0, "rho": 1.5}, "rho must be in"),
    ({"epsilon": 1.0, "loss": "dlr"}, "at least 3 classes"),
])
def test_bad_hyper_parameters(kwargs, message):
    with pytest.raises(InputError, match=message):
        apgd(linear_model(2, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), **kwargs)


def test_apgd_t_refuses_targeted_and_few_classes():
    with pytest.raises(InputError, match="untargeted"):
        apgd_t(linear_model(10, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), epsilon=1.0, targeted=True)
    with pytest.raises(InputError, match="at least 4 classes"):
        apgd_t(linear_model(3, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), epsilon=1.0)


def test_digits_cnn_robust_accuracy_no_worse_than_peers(digits):
    attacks, ta = adv_lib_attacks(), torchattacks()
    model, x, y = digits
    epsilon, steps = 1.0, 50
    for loss in ("ce", "dlr"):
        ours = _robust(model, x, y, apgd(model, x, y, epsilon=epsilon, steps=steps, loss=loss, seed=0))
        torch.manual_seed(0)
        theirs = _robust(model, x, y, attacks.apgd(model, x, y, eps=epsilon, norm=2, loss_function=loss, n_iter=steps))
        ta_adv = ta.APGD(model, norm="L2", eps=epsilon, loss=loss, steps=steps, n_restarts=1, seed=0)(x, y)
        best_peer = min(float(theirs.float().mean()), float(_robust(model, x, y, ta_adv).float().mean()))
        assert float(ours.float().mean()) <= best_peer + 2 / len(y)  # within two images of the better peer
    ours_t = _robust(model, x, y, apgd_t(model, x, y, epsilon=epsilon, steps=steps, n_target_classes=3, seed=0))
    theirs_t = _robust(model, x, y, attacks.apgd_targeted(model, x, y, eps=epsilon, norm=2, n_iter=steps,
                                                          num_targets=3))
    assert float(ours_t.float().mean()) <= float(theirs_t.float().mean()) + 2 / len(y)
