"""C&W L2 and DeepFool, native and through foolbox: closed forms on linear models, failures returned as the
input, no foolbox types leaking, model left as found."""

from __future__ import annotations

import pytest
import torch

from advwsl.attacks import carlini_wagner_l2, deepfool
from advwsl.errors import InputError
from linear_models import binary_inputs, central_inputs, l2, linear_model, optimal_untargeted

FAST_CW = {"binary_search_steps": 5, "steps": 50, "stepsize": 0.01, "initial_const": 1.0}
backends = pytest.mark.parametrize("backend", ["native", "foolbox"])


@backends
@pytest.mark.parametrize("batch, shape", [(1, (1, 8, 8)), (3, (3, 6, 6)), (16, (2, 50))])
def test_deepfool_binary_within_overshoot(batch, shape, backend):
    model = linear_model(2, shape)
    x = binary_inputs(model, batch, shape)
    y = model(x).argmax(1)
    opt = optimal_untargeted(model, x, y)
    adv = deepfool(model, x, y, backend=backend)
    assert type(adv) is torch.Tensor
    assert bool((model(adv).argmax(1) != y).all())
    norms = l2(adv, x)
    assert bool((norms >= opt * (1 - 1e-4)).all())
    assert bool((norms <= 1.02 * (opt + 1e-4) + 1e-5).all())  # DeepFool adds 1e-4 to each step's distance


@backends
def test_deepfool_all_classes_on_ten_class_linear(backend):
    model = linear_model(10, (3, 6, 6), scale=0.1)
    x = central_inputs(8, (3, 6, 6))
    y = model(x).argmax(1)
    opt = optimal_untargeted(model, x, y)
    adv = deepfool(model, x, y, candidates=None, backend=backend)
    assert bool((model(adv).argmax(1) != y).all())
    assert float((l2(adv, x) / opt).median()) <= 1.03


def test_deepfool_is_untargeted_only():
    with pytest.raises(InputError, match="untargeted"):
        deepfool(linear_model(2, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), targeted=True)


@backends
@pytest.mark.parametrize("targeted", [False, True])
def test_carlini_wagner_binary_median_within_3_percent(targeted, backend):
    shape = (3, 6, 6)
    model = linear_model(2, shape)
    x = binary_inputs(model, 8, shape)
    pred = model(x).argmax(1)
    labels = 1 - pred if targeted else pred
    opt = optimal_untargeted(model, x, pred)
    adv = carlini_wagner_l2(model, x, labels, targeted=targeted, backend=backend, **FAST_CW)
    assert type(adv) is torch.Tensor
    adv_pred = model(adv).argmax(1)
    assert bool((adv_pred == labels).all() if targeted else (adv_pred != labels).all())
    assert float((l2(adv, x) / opt).median()) <= 1.03


@backends
def test_failures_come_back_as_the_input_not_zeros(backend):
    shape = (1, 8, 8)
    model = linear_model(2, shape)
    model[1].bias.data = torch.tensor([100.0, 0.0])  # class 0 everywhere in the box: no adversarial exists
    x = central_inputs(4, shape)
    y = torch.zeros(4, dtype=torch.long)
    adv = carlini_wagner_l2(model, x, y, binary_search_steps=2, steps=5, backend=backend)
    assert torch.equal(adv, x)  # foolbox itself returns zeros for these
    assert torch.equal(deepfool(model, x, y, steps=3, backend=backend), x)


@backends
def test_failures_come_back_as_the_input_when_the_zero_image_is_misclassified(backend):
    """foolbox's C&W returns zeros for failures: those must not count as adversarials found."""
    shape = (1, 8, 8)
    model = linear_model(2, shape)
    model[1].weight.data = torch.zeros(2, 64)
    model[1].weight.data[1] = -1000 / 64
    model[1].bias.data = torch.tensor([0.0, 200.0])  # class 1 iff mean(x) < 0.2: the black image, not nearby
    x = central_inputs(4, shape)
    y = torch.zeros(4, dtype=torch.long)
    assert int(model(torch.zeros(1, *shape)).argmax()) == 1
    adv = carlini_wagner_l2(model, x, y, binary_search_steps=2, steps=5, backend=backend)
    assert torch.equal(adv, x)


@backends
def test_misclassified_inputs_unchanged_and_model_restored(backend):
    model = linear_model(10, (1, 4, 4)).train()
    x = central_inputs(6, (1, 4, 4))
    wrong = (model(x).argmax(1) + 1) % 10
    for attack in (deepfool, lambda *a, **k: carlini_wagner_l2(*a, **k, **FAST_CW)):
        assert torch.equal(attack(model, x, wrong, backend=backend), x)
        assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())


@backends
def test_bad_inputs_are_reported_before_foolbox(backend):
    model = linear_model(2, (4,))
    with pytest.raises(InputError, match="within bounds"):
        deepfool(model, torch.rand(2, 4) + 1, torch.zeros(2, dtype=torch.long), backend=backend)
    with pytest.raises(InputError, match="steps must be a positive integer"):
        carlini_wagner_l2(model, torch.rand(2, 4), torch.zeros(2, dtype=torch.long), steps=0, backend=backend)
