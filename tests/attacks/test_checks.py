"""Input and model checks run before every attack: each bad input names the problem and the fix."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from advwsl.errors import InputError, ModelError
from advwsl.errors import AdvwslWarning
from advwsl.attacks._checks import attack_mode, check_inputs, check_labels, check_model


@pytest.mark.parametrize("inputs, message", [
    (torch.randint(0, 255, (2, 1, 4, 4), dtype=torch.uint8), "float tensor .* images.float\\(\\) / 255"),
    (torch.tensor([[0.1, float("nan")], [0.2, 0.3]]), "NaN or infinite .*first rows: \\[0\\]"),
    (torch.tensor([[0.1, float("inf")]]), "NaN or infinite"),
    (torch.tensor([[0.0, 12.0, 255.0]]), "within bounds .* divide by 255"),
    (torch.tensor([[-2.1, 0.3, 2.4]]), "within bounds .*look normalized"),
    (torch.empty(0, 3), "non-empty"),
    ([[0.1]], "torch.Tensor"),
])
def test_bad_inputs(inputs, message):
    with pytest.raises(InputError, match=message):
        check_inputs(inputs)


def test_good_inputs_and_other_bounds():
    check_inputs(torch.rand(3, 1, 4, 4))
    check_inputs(torch.rand(3, 2) * 2 - 1, (-1, 1))
    with pytest.raises(InputError, match="lower < upper"):
        check_inputs(torch.rand(3, 2), (1, 0))


def test_bad_labels():
    with pytest.raises(InputError, match="one class index per input"):
        check_labels(torch.zeros(3, dtype=torch.long), 4)
    with pytest.raises(InputError, match="integer class indices"):
        check_labels(torch.zeros(4), 4)
    with pytest.raises(InputError, match=r"in \[0, 9\]"):
        check_labels(torch.tensor([0, 12]), 2, 10)


def test_model_checks():
    x = torch.rand(4, 6)
    assert check_model(nn.Linear(6, 3).eval(), x) == 3
    with pytest.raises(ModelError, match="at least 2 classes"):
        check_model(nn.Linear(6, 1), x)
    with pytest.raises(ModelError, match=r"logits of shape \(N, C\)"):
        check_model(nn.Identity(), torch.rand(4, 1, 2, 2))
    with pytest.raises(ModelError, match="failed on inputs of shape"):
        check_model(nn.Linear(5, 3), x)
    with pytest.warns(AdvwslWarning, match="probabilities .* remove the final softmax"):
        check_model(nn.Sequential(nn.Linear(6, 3), nn.Softmax(1)), x)
    with pytest.warns(AdvwslWarning, match="not deterministic .* disable dropout"):
        check_model(_AlwaysRandom(), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_model(nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.5)).train(), x)  # checked in eval mode


class _AlwaysRandom(nn.Module):
    def forward(self, x):
        return torch.randn(len(x), 3)


def test_attack_mode_warns_and_restores():
    model = nn.Sequential(nn.Linear(6, 3), nn.Dropout(0.5)).train()
    model[0].bias.requires_grad_(False)
    with pytest.warns(AdvwslWarning, match="train mode"):
        with attack_mode(model):
            assert not model.training and not model[1].training
            assert not any(p.requires_grad for p in model.parameters())
    assert model.training and model[1].training
    assert model[0].weight.requires_grad and not model[0].bias.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with attack_mode(model.eval()):
            pass
