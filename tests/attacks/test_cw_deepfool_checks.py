"""C&W and DeepFool, both backends: bad labels, bad model outputs, dtype and device mismatches raise the
project's errors before any work, and the model is left exactly as found."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from advwsl.attacks import carlini_wagner_l2, deepfool
from advwsl.attacks.deepfool import deepfool_fb1
from advwsl.errors import InputError, ModelError
from linear_models import central_inputs, linear_model

ATTACKS = {
    "cw-native": functools.partial(carlini_wagner_l2, binary_search_steps=2, steps=5),
    "cw-foolbox": functools.partial(carlini_wagner_l2, binary_search_steps=2, steps=5, backend="foolbox"),
    "deepfool-native": functools.partial(deepfool, steps=3),
    "deepfool-foolbox": functools.partial(deepfool, steps=3, backend="foolbox"),
    "deepfool-fb1": functools.partial(deepfool_fb1, steps=3),
}
attacks = pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))


class Returns(nn.Module):
    """A linear model whose output is post-processed by ``fn``."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 10)
        self.fn = fn

    def forward(self, x: torch.Tensor):
        return self.fn(self.linear(x.flatten(1)))


def _inputs(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return central_inputs(n, (1, 4, 4)), torch.zeros(n, dtype=torch.long)


@attacks
@pytest.mark.parametrize("labels, message", [
    (torch.tensor([0, 1, -1, 2]), r"class indices >= 0, got -1"),
    (torch.tensor([0, 1, 10, 2]), r"class indices in \[0, 9\]"),
    (torch.tensor([0.0, 1.0, 2.0, 3.0]), "integer class indices"),
    ([0, 1, 2, 3], "1-D tensor"),
    (torch.zeros(3, dtype=torch.long), "one class index per input"),
])
def test_bad_labels(attack, labels, message):
    x, _ = _inputs()
    with pytest.raises(InputError, match=message):
        attack(linear_model(10, (1, 4, 4)), x, labels)


@attacks
@pytest.mark.parametrize("fn, message", [
    (lambda z: (z, z.sum()), "returned a tuple"),
    (lambda z: {"logits": z}, "returned a dict"),
    (lambda z: z[:, 0], r"logits of shape \(N, C\)"),
    (lambda z: z[:, :1], "C >= 2"),
    (lambda z: z.clone().index_fill_(0, torch.tensor([1]), float("nan")), r"NaN or infinite logits .*rows: \[1\]"),
])
def test_bad_model_outputs(attack, fn, message):
    x, y = _inputs()
    with pytest.raises(ModelError, match=message):
        attack(Returns(fn), x, y)


@attacks
def test_model_failure_is_a_model_error(attack):
    x, y = _inputs()
    with pytest.raises(ModelError, match="input size and channels"):
        attack(linear_model(10, (1, 5, 5)), x, y)


@attacks
def test_dtype_and_device_mismatch(attack):
    x, y = _inputs()
    with pytest.raises(InputError, match=r"torch.float64 but the inputs are torch.float32"):
        attack(linear_model(10, (1, 4, 4)).double(), x, y)
    with pytest.raises(InputError, match="the model is on meta but the inputs are on cpu"):
        attack(linear_model(10, (1, 4, 4)).to("meta"), x, y)


@pytest.mark.parametrize("attack", [carlini_wagner_l2, deepfool])
def test_unknown_backend(attack):
    x, y = _inputs()
    with pytest.raises(InputError, match="backend must be one of"):
        attack(linear_model(10, (1, 4, 4)), x, y, backend="adv_lib")


@attacks
def test_model_left_exactly_as_found(attack):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(32, 10))
    model[1].requires_grad_(False)  # a partly frozen model stays partly frozen
    model.train()
    model[2].eval()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    x = central_inputs(6, (1, 4, 4))
    x_before = x.clone()
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    model.train()
    model[2].eval()
    attack(model, x, y)
    assert model.training and model[4].training and not model[2].training
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True, True, True]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())  # no BatchNorm update
    assert torch.equal(x, x_before) and not x.requires_grad


@attacks
def test_runs_under_no_grad(attack):
    """Callers evaluating under torch.no_grad() get the same adversarials: the attacks enable gradients."""
    model = linear_model(10, (1, 4, 4), scale=0.5)
    x = central_inputs(4, (1, 4, 4))
    y = model(x).argmax(1)
    with torch.no_grad():
        adv = attack(model, x, y)
    assert torch.equal(adv, attack(model, x, y))
