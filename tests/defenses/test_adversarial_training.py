"""The adversarial-training hook: frozen model during the attack, train mode and gradients untouched,
training adversarials inside the epsilon-ball, the clean share of eq. A V-6, statistics and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advwsl.defenses import AdversarialPerturbation, ddn_training, madry_training, make_perturbation
from advwsl.errors import ConfigError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.3), nn.Flatten(),
                         nn.Linear(8 * 14 * 14, 10))


def _batch(n=12):
    g = torch.Generator().manual_seed(1)
    return torch.round(torch.rand(n, 1, 16, 16, generator=g) * 255) / 255, torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("make", [lambda: ddn_training(0.5, steps=20), lambda: madry_training(0.5, steps=5)],
                         ids=["ddn", "pgd"])
def test_hook_freezes_model_and_restores_it(make):
    model = _net().train()
    model[5].bias.requires_grad_(False)
    running = model[1].running_mean.clone()
    x, y = _batch()
    calls = []

    def spy(module, inputs, output):  # record the state the attack sees
        calls.append((module.training, any(p.requires_grad for p in module.parameters())))

    handle = model[0].register_forward_hook(spy)
    adv = make()(model, x, y)
    handle.remove()
    assert calls and all(training is False and grad is False for training, grad in calls)
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, True, False]
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[1].running_mean, running)
    # the training step that follows gets gradients as usual
    F.cross_entropy(model(adv), y).backward()
    assert model[0].weight.grad is not None


@pytest.mark.parametrize("attack", ["ddn", "pgd"])
def test_training_adversarials_inside_epsilon_ball(attack):
    model = _net().eval()
    x, y = _batch(16)
    eps = 0.4  # far below DDN's minimal norms on most samples: the projection is active
    hook = make_perturbation(attack, eps, steps=30)
    adv = hook(model, x, y)
    norms = (adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= eps + 1e-5
    assert adv.min() >= 0 and adv.max() <= 1
    assert torch.allclose(adv * 255, torch.round(adv * 255), atol=1e-4)  # levels=256 kept after projection
    stats = hook.stats()
    assert stats["adv_samples"] == 16
    assert stats["adv_l2_max"] <= eps + 1e-5
    assert abs(stats["adv_l2_mean"] - norms.mean().item()) < 1e-5
    assert stats["attack_l2_mean"] >= stats["adv_l2_mean"] - 1e-6
    hook.reset()
    assert hook.stats()["adv_samples"] == 0


def test_clean_fraction_keeps_that_share_clean_and_is_seeded():
    model = _net().eval()
    x, y = _batch(20)
    a = madry_training(1.0, steps=3, clean_fraction=0.25, seed=3)(model, x, y)
    b = madry_training(1.0, steps=3, clean_fraction=0.25, seed=3)(model, x, y)
    assert torch.equal(a, b)
    unchanged = (a == x).flatten(1).all(dim=1)
    assert int(unchanged.sum()) == 5


def test_hook_state_dict_round_trip():
    model = _net().eval()
    x, y = _batch(10)
    hook = madry_training(1.0, steps=2, clean_fraction=0.5, seed=0)
    state = hook.state_dict()
    first = hook(model, x, y)
    hook.load_state_dict(state)
    assert torch.equal((hook(model, x, y) == x).flatten(1).all(1), (first == x).flatten(1).all(1))


def test_custom_attack_sees_true_labels_untargeted():
    seen = {}

    def attack(model, inputs, labels, *, targeted=False, scale=1.0):
        seen.update(targeted=targeted, labels=labels.clone(), scale=scale)
        return (inputs + scale).clamp(0, 1)

    x, y = _batch(4)
    adv = AdversarialPerturbation(attack, 0.1, attack_kwargs={"scale": 0.5})(_net(), x, y)
    assert seen["targeted"] is False and seen["scale"] == 0.5
    assert torch.equal(seen["labels"], y)
    assert (adv - x).flatten(1).norm(dim=1).max() <= 0.1 + 1e-6


@pytest.mark.parametrize("kwargs, message", [
    ({"epsilon": 0.0}, "epsilon"),
    ({"epsilon": float("inf")}, "epsilon"),
    ({"epsilon": 1.0, "clean_fraction": 1.0}, "clean_fraction"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AdversarialPerturbation(lambda *a, **k: a[1], **kwargs)


def test_unknown_attack_name():
    with pytest.raises(ConfigError, match="'fgsm'.*ddn.*pgd"):
        make_perturbation("fgsm", 1.0)


# ----------------------------------------------------------------------------- training on real digits


def _digits_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def _train(hook, epochs=8):
    from torch.utils.data import DataLoader, TensorDataset

    from advwsl.data.digits import sklearn_digits
    from advwsl.defenses import adversarial_train

    x, y = sklearn_digits(16, "train")
    model = _digits_mlp()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    history = adversarial_train(model, loader, torch.optim.Adam(model.parameters(), lr=3e-3), perturbation=hook,
                                epochs=epochs)
    return model.eval(), history


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ddn_training_raises_median_l2_of_ddn_adversarials(one_thread):
    """Eq. A V-9 on the scikit-learn digits (16x16, an MLP, 8 epochs): DDN-100 adversarials of the test set
    need a larger median L2 against the DDN-trained model (measured 0.956) than against the same model
    trained cleanly for the same epochs (0.774): a margin of 24 %; the test asks for 12 %."""
    from advwsl.attacks.runner import run_attack
    from advwsl.data.digits import sklearn_digits

    xt, yt = sklearn_digits(16, "test")
    xt, yt = xt[:150], yt[:150]
    clean, clean_hist = _train(None)
    robust, hist = _train(ddn_training(2.0, steps=10))
    medians = {}
    for name, model in (("clean", clean), ("ddn", robust)):
        result = run_attack(model, xt, yt, attack="ddn", attack_kwargs={"steps": 100}, progress=False)
        assert result.summary()["success"] == 1.0
        medians[name] = result.summary()["median_l2"]
        assert (model(xt).argmax(1) == yt).float().mean() > 0.88  # robustness not bought with accuracy
    assert medians["ddn"] >= 1.12 * medians["clean"], medians
    # logged per epoch: mean L2 of the training adversarials, bounded by epsilon_max, growing as it learns
    l2 = [row["adv_l2_mean"] for row in hist]
    assert all(0 < v <= 2.0 for v in l2) and l2[-1] > l2[0]
    assert all(row["adv_l2_max"] <= 2.0 + 1e-5 for row in hist)
    assert "adv_l2_mean" not in clean_hist[0]


def test_clean_epochs_then_adversarial(one_thread):
    hook = madry_training(1.0, steps=2, clean_epochs=2)
    model, history = _train(hook, epochs=3)
    assert [row["adversarial"] for row in history] == [0.0, 0.0, 1.0]
    assert [row["adv_samples"] for row in history][:2] == [0.0, 0.0] and history[2]["adv_samples"] > 1000
    state = hook.state_dict()
    again = madry_training(1.0, steps=2, clean_epochs=2)
    again.load_state_dict(state)
    assert again.epoch == 3 and again.active


def test_clean_epochs_must_be_a_count():
    with pytest.raises(ConfigError, match="clean_epochs"):
        ddn_training(1.0, clean_epochs=-1)
