"""run_attack and what a model or a caller may get wrong: a model that changes its input in place does not
change the caller's tensors (the runner and the attack work on copies), integer logits and NaN logits are
named, and a target tensor shorter than the data is a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advwsl.attacks.ddn import quantize
from advwsl.attacks.runner import run_attack
from advwsl.errors import AdvwslWarning, InputError, ModelError
from linear_models import central_inputs, l2, linear_model


class InPlace(nn.Module):
    """Halves its input in place (``x.mul_(0.5)``) before a linear classifier: its function is
    ``net(x / 2)``, and it overwrites whatever tensor it is given."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mul_(0.5))


@pytest.fixture
def setup():
    net = linear_model(10, (1, 6, 6), scale=0.6)
    x = quantize(central_inputs(12, (1, 6, 6)), 256)
    with torch.no_grad():
        y = net(x / 2).argmax(1)
    return net, x, y


@pytest.mark.parametrize("attack", ["ddn", "pgd", "deepfool", "cw"])
def test_a_model_that_changes_its_input_in_place_leaves_the_callers_tensors_alone(setup, attack):
    net, x, y = setup
    from advwsl.attacks import list_attacks

    if attack not in list_attacks():
        pytest.skip(f"{attack} is not registered")
    kwargs = {"ddn": {"steps": 20}, "fmn": {"steps": 20}, "pgd": {"epsilon": 1.0, "steps": 5},
              "deepfool": {"steps": 10}, "cw": {"binary_search_steps": 5, "steps": 50}}[attack]
    before, labels = x.clone(), y.clone()
    result = run_attack(InPlace(net), x, y, attack=attack, attack_kwargs=kwargs, batch_size=5, progress=False,
                        keep_adversarials=True)
    assert torch.equal(x, before) and torch.equal(y, labels)
    adv = result.adversarials
    with torch.no_grad():  # what is recorded is what the model's function, net(x / 2), does on them
        assert (result.adv_pred == net(adv / 2).argmax(1).numpy()).all()
        assert (result.clean_pred == net(x / 2).argmax(1).numpy()).all()
    np.testing.assert_allclose(result.l2, l2(adv, x).numpy(), rtol=1e-5, atol=1e-6)
    if attack != "pgd":  # (PGD is bounded)
        assert result.success[result.originally_correct].all()


def test_a_dataloaders_tensors_are_left_alone_too(setup):
    net, x, y = setup
    dataset = TensorDataset(x.clone(), y.clone())
    run_attack(InPlace(net), DataLoader(dataset, batch_size=4), attack_kwargs={"steps": 10}, progress=False)
    assert torch.equal(dataset.tensors[0], x)


def test_integer_logits_are_a_clear_error(setup):
    net, x, y = setup

    class Rounded(nn.Module):
        def forward(self, inputs):
            return (net(inputs) * 100).long()

    with pytest.raises(ModelError, match="integer logits.*int64"):
        run_attack(Rounded().eval(), x, y, progress=False)


def test_a_target_tensor_shorter_than_the_data_is_a_clear_error(setup):
    net, x, y = setup
    target = (y[:5] + 1) % 10
    with pytest.raises(InputError, match="target has 5 entries but the data has 12 samples"):
        run_attack(net, x, y, targeted=True, target=target, progress=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    with pytest.raises(InputError, match="target has 5 entries but the data has more"):
        run_attack(net, loader, targeted=True, target=target, attack_kwargs={"steps": 5}, progress=False)
    with pytest.raises(InputError, match="target"):
        run_attack(net, x, y, targeted=True, target=target[:, None], progress=False)


class NaNAt(nn.Module):
    """A linear classifier whose logits are NaN on inputs whose first pixel is exactly ``value``."""

    def __init__(self, net: nn.Module, value: float) -> None:
        super().__init__()
        self.net, self.value = net, value
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        return torch.where((x.flatten(1)[:, :1] == self.value), torch.full_like(z, float("nan")), z)


def test_nan_clean_logits_beyond_the_first_batch_are_named(setup):
    net, x, y = setup
    x = x.clone()
    x[9, 0, 0, 0] = 0.0  # sample 9, in the third batch of 4: the model's check sees only the first batch
    with pytest.raises(ModelError, match=r"NaN or infinite logits.*\[9\]"):
        run_attack(NaNAt(net, 0.0), x, y, batch_size=4, progress=False)


def test_an_adversarial_with_nan_logits_is_not_a_success(setup):
    net, x, y = setup
    with torch.no_grad():
        y = net(x).argmax(1)

    def to_zero(model, inputs, labels, *, targeted=False):
        adv = inputs.clone()
        adv[::2, 0, 0, 0] = 0.0  # every other sample: an input on which the model returns NaN
        return adv

    with pytest.warns(AdvwslWarning, match="NaN or infinite logits on 6 adversarial"):
        result = run_attack(NaNAt(net, 0.0), x, y, attack=to_zero, levels=None, progress=False)
    assert not result.success[::2].any()
    assert (result.adv_pred[1::2] == y[1::2].numpy()).all() and not result.success[1::2].any()
