"""run_attack: per-sample records, counts, verification, targeted modes, data sources and checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from advwsl.attacks import ddn
from advwsl.attacks.ddn import quantize
from advwsl.attacks.runner import VerificationError, run_attack
from advwsl.errors import InputError, ModelError
from advwsl.errors import AdvwslWarning
from linear_models import central_inputs, l2, linear_model


@pytest.fixture
def setup():
    model = linear_model(10, (1, 6, 6), scale=0.3)
    x = quantize(central_inputs(12, (1, 6, 6)), 256)
    y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 10  # three samples the model gets wrong
    return model, x, y


def test_records_counts_and_verification(setup):
    model, x, y = setup
    result = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 20}, batch_size=5, progress=False,
                        keep_adversarials=True)
    assert len(result) == 12 and result.attack == "DDN" and result.budget == "20" and result.levels == 256
    assert list(result.index) == list(range(12))
    assert not result.originally_correct[:3].any() and result.originally_correct[3:].all()
    assert not result.success[:3].any() and result.success[3:].all()
    assert np.allclose(result.l2[:3], 0)  # misclassified inputs come back unchanged, not as successes
    adv = result.adversarials
    assert torch.equal(adv, quantize(adv, 256))
    np.testing.assert_allclose(result.l2, l2(adv, x).numpy(), rtol=1e-6)
    assert (result.adv_pred == model(adv).argmax(1).numpy()).all()
    # DDN: one forward + backward per step, one extra forward for the final iterate
    assert (result.n_backward == 20).all() and (result.n_forward == 21).all()
    summary = result.summary()
    assert summary["success"] == 1.0 and summary["grads_per_sample"] == 20
    assert summary["clean_accuracy"] == pytest.approx(0.75)
    assert summary["mean_l2"] == pytest.approx(result.l2[3:].mean())
    assert result.accuracy(0.0) == pytest.approx(0.75)


def test_dataloader_equals_tensor(setup):
    model, x, y = setup
    a = run_attack(model, x, y, attack_kwargs={"steps": 10}, batch_size=4, progress=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    b = run_attack(model, loader, attack_kwargs={"steps": 10}, batch_size=4, progress=False)
    pd_a, pd_b = a.to_frame(), b.to_frame()
    assert pd_a.equals(pd_b)


def test_targeted_all_least_likely_and_given(setup):
    model, x, y = setup
    every = run_attack(model, x, y, attack_kwargs={"steps": 30}, targeted=True, batch_size=64, progress=False)
    assert len(every) == 12 * 9
    assert all((every.target[every.index == i] != y[i].item()).all() for i in range(12))
    s = every.summary()
    assert s["average"]["success"] == 1.0 and s["least_likely"]["success"] == 1.0
    assert s["least_likely"]["mean_l2"] >= s["average"]["mean_l2"]
    least = run_attack(model, x, y, attack_kwargs={"steps": 30}, targeted=True, target="least_likely",
                       progress=False)
    assert (least.target == model(x).argmin(1).numpy()).all()
    given = torch.full((12,), 4)
    chosen = run_attack(model, x, y, attack_kwargs={"steps": 30}, targeted=True, target=given, progress=False)
    assert (chosen.target == 4).all()
    ok = chosen.originally_correct & (chosen.label != 4)
    assert chosen.success[ok].all()


def _bad_attack(kind):
    def attack(model, inputs, labels, *, targeted=False):
        if kind == "bounds":
            return inputs + 2
        if kind == "nan":
            return inputs * float("nan")
        if kind == "shape":
            return inputs[:, :, :2]
        return (inputs + 0.3 / 255).clamp(0, 1)  # off the lattice

    return attack


@pytest.mark.parametrize("kind, message", [("bounds", "outside bounds"), ("nan", "NaN"), ("shape", "returned"),
                                           ("lattice", "lattice")])
def test_verification_catches_bad_attacks(setup, kind, message):
    model, x, y = setup
    attack = _bad_attack(kind)
    if kind == "lattice":
        def attack(model, inputs, labels, *, targeted=False, levels=256):  # noqa: F811 - claims to quantize
            return (inputs + 0.3 / 255).clamp(0, 1)
    with pytest.raises(VerificationError, match=message):
        run_attack(model, x, y, attack=attack, progress=False)


def test_train_mode_warned_attacked_in_eval_and_restored(setup):
    model, x, y = setup
    net = nn.Sequential(model, nn.Dropout(0.5)).train()
    with pytest.warns(AdvwslWarning, match="train mode"):
        result = run_attack(net, x, y, attack_kwargs={"steps": 10}, progress=False)
    assert net.training and net[1].training
    assert result.success[3:].all()  # dropout was off during the attack


def test_checks_run_before_attacking(setup):
    model, x, y = setup
    with pytest.raises(InputError, match="float tensor"):
        run_attack(model, (x * 255).to(torch.uint8), y, progress=False)
    with pytest.raises(InputError, match="within bounds"):
        run_attack(model, x * 4 - 2, y, progress=False)
    with pytest.raises(InputError, match="NaN"):
        run_attack(model, x * float("nan"), y, progress=False)
    with pytest.raises(InputError, match="labels are required"):
        run_attack(model, x, progress=False)
    with pytest.raises(InputError, match="class indices in"):
        run_attack(model, x, y + 10, progress=False)
    with pytest.raises(InputError, match="unknown attack"):
        run_attack(model, x, y, attack="nope", progress=False)
    one = nn.Sequential(nn.Flatten(), nn.Linear(36, 1)).eval()
    with pytest.raises(ModelError, match="at least 2 classes"):
        run_attack(one, x, y, progress=False)
    probs = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    with pytest.warns(AdvwslWarning, match="probabilities"):
        run_attack(probs, x[:2], y[:2], attack_kwargs={"steps": 2}, progress=False)


class _Noisy(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) + torch.randn(len(x), 10)


def test_nondeterministic_model_warned(setup):
    model, x, y = setup
    with pytest.warns(AdvwslWarning, match="not deterministic"):
        run_attack(_Noisy(model).eval(), x[:2], y[:2], attack_kwargs={"steps": 2}, progress=False)


def test_callable_attacks_and_all_registry_attacks(setup):
    model, x, y = setup
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdvwslWarning)
        res = run_attack(model, x, y, attack=ddn, attack_kwargs={"steps": 10, "loss": "margin"}, name="DDN-m",
                         progress=False)
    assert res.attack == "DDN-m" and res.success[3:].all()
    df = run_attack(model, x, y, attack="deepfool", progress=False, levels=None)
    assert df.levels is None and df.success[3:].all() and (df.n_backward > 0).all()
    cw = run_attack(model, x, y, attack="cw", progress=False,
                    attack_kwargs={"binary_search_steps": 2, "steps": 20, "stepsize": 0.05, "initial_const": 1.0})
    assert cw.budget == "2x20" and cw.attack == "C&W" and (cw.n_backward <= 40).all()


def test_cam_goal_on_a_model_without_cams_names_the_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    x = torch.full((2, 1, 2, 2), 0.5)
    with pytest.raises(ModelError, match="Sequential has no class activation maps"):
        run_attack(model, x, torch.tensor([0, 1]), attack="cam-ddn", progress=False)


def test_targeted_run_rejects_a_target_equal_to_the_label():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.full((2, 1, 2, 2), 0.5)
    labels = torch.tensor([0, 1])
    with pytest.raises(InputError, match="target equals the true label"):
        run_attack(model, x, labels, attack="ddn", targeted=True, target=torch.tensor([2, 1]), progress=False)
