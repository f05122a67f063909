"""DDN (Algorithm A V-1): closed forms on linear models, agreement with foolbox, invariances, lattice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advwsl.attacks import ddn
from advwsl.attacks.ddn import cosine_step_sizes, quantize
from advwsl.errors import InputError
from counting import train_digits_cnn
from linear_models import binary_inputs, central_inputs, l2, linear_model, optimal_binary_targeted, optimal_untargeted

SHAPES = [(1, 8, 8), (3, 6, 6), (2, 50)]


CASES = list(zip([1, 3, 16], SHAPES))


@pytest.mark.parametrize("batch, shape", CASES)
@pytest.mark.parametrize("targeted", [False, True])
def test_binary_linear_closed_form(batch, shape, targeted):
    model = linear_model(2, shape)
    x = binary_inputs(model, batch, shape)
    pred = model(x).argmax(1)
    labels = 1 - pred if targeted else pred
    opt = optimal_binary_targeted(model, x, labels) if targeted else optimal_untargeted(model, x, labels)
    adv = ddn(model, x, labels, targeted=targeted, levels=None)
    adv_pred = model(adv).argmax(1)
    assert bool((adv_pred == labels).all() if targeted else (adv_pred != labels).all())
    ratio = l2(adv, x) / opt
    assert ratio.min() >= 1 - 1e-4  # nothing beats the optimum
    assert ratio.median() <= 1.005


@pytest.mark.parametrize("batch, shape", CASES)
def test_ten_class_linear_no_worse_than_foolbox(batch, shape):
    import foolbox as fb

    model = linear_model(10, shape, scale=0.1)  # close logits: the cross-entropy direction is a mixture
    x = central_inputs(batch, shape)
    y = model(x).argmax(1)
    opt = optimal_untargeted(model, x, y)
    ours = ddn(model, x, y, levels=None)
    theirs = fb.attacks.DDNAttack(steps=100).run(fb.PyTorchModel(model, (0, 1)), x, y)
    assert bool((model(ours).argmax(1) != y).all())
    assert (l2(ours, x) / opt).median() <= (l2(theirs, x) / opt).median() * 1.001
    margin = ddn(model, x, y, levels=None, loss="margin")
    assert bool((model(margin).argmax(1) != y).all())
    assert (l2(margin, x) / opt).median() <= 1.02  # the margin loss closes the cross-entropy gap


def test_ten_class_targeted_linear():
    model = linear_model(10, (3, 4, 4))
    x = central_inputs(16, (3, 4, 4))
    pred = model(x).argmax(1)
    target = (pred + 3) % 10
    for loss in ("ce", "margin"):
        adv = ddn(model, x, target, targeted=True, levels=None, loss=loss)
        assert bool((model(adv).argmax(1) == target).all())
        # reaching the target class is at least as far as leaving the predicted one
        assert bool((l2(adv, x) >= optimal_untargeted(model, x, pred) * (1 - 1e-4)).all())


def test_alone_or_in_batch_gives_the_same_result():
    model = linear_model(10, (3, 4, 4))
    x = central_inputs(4, (3, 4, 4))
    y = model(x).argmax(1)
    for levels in (None, 256):
        batch = ddn(model, x, y, levels=levels, seed=0)
        alone = torch.cat([ddn(model, x[i:i + 1], y[i:i + 1], levels=levels, seed=0) for i in range(len(x))])
        torch.testing.assert_close(batch, alone, atol=1e-6, rtol=0)


def test_inputs_and_model_state_unchanged():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(16, 10))
    model.train()
    model[1].weight.requires_grad_(False)
    model[5].weight.grad = torch.ones_like(model[5].weight)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(6, 3, 4, 4)
    x_copy = x.clone()
    y = torch.arange(6)
    ddn(model, x, y, steps=20)
    assert torch.equal(x, x_copy)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
    assert torch.equal(model[5].weight.grad, torch.ones_like(model[5].weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "5.weight")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k  # BatchNorm running statistics untouched


def test_quantized_outputs_on_lattice_and_adversarial():
    model = linear_model(10, (3, 6, 6), scale=0.3)
    x = quantize(central_inputs(16, (3, 6, 6)), 256)
    y = model(x).argmax(1)
    adv = ddn(model, x, y, levels=256)
    assert torch.equal(adv, quantize(adv, 256))
    assert bool((model(adv).argmax(1) != y).all())
    assert bool((adv >= 0).all() and (adv <= 1).all())


def test_misclassified_inputs_returned_unchanged():
    model = linear_model(10, (1, 4, 4))
    x = central_inputs(8, (1, 4, 4))
    pred = model(x).argmax(1)
    wrong = pred.clone()
    wrong[::2] = (pred[::2] + 1) % 10  # half of the labels disagree with the prediction
    adv = ddn(model, x, wrong)
    assert torch.equal(adv[::2], x[::2])
    assert bool((l2(adv[1::2], x[1::2]) > 0).all())


def test_scale_equivariant_bounds():
    model = linear_model(10, (3, 4, 4))
    x = quantize(central_inputs(8, (3, 4, 4)), 256)
    y = model(x).argmax(1)
    shifted = nn.Sequential(_Affine(0.5, 0.5), model)  # takes images in [-1, 1]
    ref = ddn(model, x, y)
    out = ddn(shifted, 2 * x - 1, y, bounds=(-1.0, 1.0))
    assert bool((out >= -1).all() and (out <= 1).all())
    torch.testing.assert_close(out, 2 * ref - 1, atol=1e-5, rtol=0)


class _Affine(nn.Module):
    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b


class _DeadZone(nn.Module):
    """Zero gradient wherever the mean pixel is below 0.6; class 1 wins above 0.65."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.relu(x.flatten(1).mean(1) - 0.6) * 100 - 5 * 0.1
        return torch.stack([torch.zeros_like(z), z], 1)


def test_zero_gradient_uses_a_random_direction_and_stays_finite():
    x = torch.full((4, 1, 4, 4), 0.5)
    y = torch.zeros(4, dtype=torch.long)
    adv = ddn(_DeadZone(), x, y, seed=3, levels=None)
    assert bool(torch.isfinite(adv).all())
    again = ddn(_DeadZone(), x, y, seed=3, levels=None)
    assert torch.equal(adv, again)


def test_worst_case_norm_caps_epsilon():
    model = linear_model(2, (1, 3, 3))
    x = central_inputs(4, (1, 3, 3))
    y = model(x).argmax(1)
    adv = ddn(model, x, y, init_epsilon=1e6, steps=5, levels=None)
    worst = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)
    assert bool((l2(adv, x) <= worst + 1e-5).all())


def test_cosine_schedule():
    alphas = cosine_step_sizes(100)
    assert alphas[0] == pytest.approx(1.0) and alphas[-1] == pytest.approx(0.01)
    assert all(a >= b for a, b in zip(alphas, alphas[1:]))


class _OnePixel(nn.Module):
    """Class 1 exactly when pixel (0, 0) exceeds 128.5 / 255: from x = 128 / 255 everywhere, the smallest
    adversarial on the 8-bit lattice changes that pixel by one level, a norm of 1 / 255."""

    def forward(self, x):
        z = 50.0 * (x[:, 0, 0, 0] - 128.5 / 255)
        return torch.stack([-z, z], 1)


@pytest.mark.parametrize("gamma, levels", [(0.06, 1), (0.05, 2), (0.01, 95)])
def test_eq_a_v_8_gamma_decides_how_close_100_steps_get(gamma, levels):
    """Eq. A V-8: from epsilon_0 = 1, K = 100 steps can reach a norm below 1.5 / 255 (which one 8-bit level
    rounds to) only if gamma > 1 - (3 / 510)^(1/100) = 0.05006. The condition is necessary, not sufficient:
    epsilon shrinks only on the steps that are adversarial, so on this one-pixel decision DDN 100 reaches
    the one-level adversarial with gamma = 0.06, stops at two levels with the reference's 0.05, and stays
    95 levels away with 0.01 (0.99^100 = 0.37)."""
    x = torch.full((2, 1, 4, 4), 128 / 255)
    y = torch.zeros(2, dtype=torch.long)
    adv = ddn(_OnePixel(), x, y, steps=100, gamma=gamma, levels=256, seed=0)
    assert bool((_OnePixel()(adv).argmax(1) == 1).all())
    assert l2(adv, x).mul(255).round().tolist() == [levels, levels]


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"gamma": 1.5}, "gamma must be in (0, 1)"),
    ({"levels": 1}, "levels must be an integer >= 2"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"bounds": (1, 0)}, "lower < upper"),
])
def test_bad_hyper_parameters(kwargs, message):
    model = linear_model(2, (4,))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ddn(model, torch.rand(2, 4), torch.zeros(2, dtype=torch.long), **kwargs)


@pytest.mark.parametrize("inputs, labels, message", [
    (torch.randint(0, 255, (2, 4)), torch.zeros(2, dtype=torch.long), "float tensor"),
    (torch.full((2, 4), float("nan")), torch.zeros(2, dtype=torch.long), "NaN"),
    (torch.rand(2, 4) * 3, torch.zeros(2, dtype=torch.long), "within bounds"),
    (torch.rand(2, 4), torch.zeros(3, dtype=torch.long), "one class index per input"),
    (torch.rand(2, 4), torch.zeros(2), "integer class indices"),
    (torch.rand(2, 4), torch.full((2,), 7), r"class indices in \[0, 1\]"),
])
def test_bad_inputs(inputs, labels, message):
    with pytest.raises(InputError, match=message):
        ddn(linear_model(2, (4,)), inputs, labels)


@pytest.fixture(scope="module")
def digits_cnn():
    """A small CNN trained here on the scikit-learn digits (16 x 16), and correctly classified test images."""
    return train_digits_cnn(48)


def test_digits_cnn_success_and_norm_vs_foolbox(digits_cnn):
    import foolbox as fb

    model, x, y = digits_cnn
    theirs = fb.attacks.DDNAttack(steps=100).run(fb.PyTorchModel(model, (0, 1)), x, y)
    ours = ddn(model, x, y, levels=None)
    quantized = ddn(model, x, y)
    with torch.no_grad():
        assert bool((model(ours).argmax(1) != y).all())
        assert bool((model(quantized).argmax(1) != y).all())  # 100 % success on the lattice too
    assert torch.equal(quantized, quantize(quantized, 256))
    assert float(l2(ours, x).median()) <= 1.02 * float(l2(theirs, x).median())
    assert float(l2(quantized, x).median()) <= 1.02 * float(l2(theirs, x).median())
