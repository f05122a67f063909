"""Every registered attack, called from Python through :func:`advwsl.attacks.get_attack`, refuses what it
cannot attack with a project error naming the problem (never a traceback from deep inside torch or
foolbox, never an empty AssertionError, never the input returned unchanged as if nothing were wrong);
and :func:`run_attack` on inputs off the 8-bit lattice blames the data, not the attack."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advwsl.attacks import get_attack, run_attack
from advwsl.attacks.runner import on_lattice
from advwsl.errors import AdvwslWarning, InputError, ModelError, VerificationError
from advwsl.models import create_model

from linear_models import linear_model

SHAPE = (3, 4, 4)
#: Small budgets: the checks run before any step, these only bound the time when an attack does run.
KWARGS = {"ddn": {"steps": 5}, "pgd": {"epsilon": 0.5, "steps": 3}, "cw": {"binary_search_steps": 1, "steps": 5},
          "deepfool": {"steps": 5}, "cam-ddn": {"steps": 3}}
LABEL_ATTACKS = ("ddn", "pgd", "cw", "deepfool")


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return linear_model(3, SHAPE), torch.rand(4, *SHAPE), torch.tensor([0, 1, 2, 0])


@pytest.fixture(scope="module")
def wsl():
    torch.manual_seed(0)
    model = create_model("wildcat", backbone="resnet-mini", stride=8, num_classes=2,
                         backbone_kwargs={"widths": [8, 8, 8, 8], "blocks": [1, 1, 1, 1]}).eval()
    return model, torch.rand(2, 3, 32, 32), torch.tensor([0, 1])


class NaNLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(48, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


class NaNOffTheInputs(nn.Module):
    """Finite logits on the clean inputs (here: on the 8-bit lattice), NaN anywhere else."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(48, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        off = (x * 255 - (x * 255).round()).abs().flatten(1).amax(1) > 1e-3
        return self.linear(x.flatten(1)) + torch.where(off, float("nan"), 0.0)[:, None]


class OneScore(nn.Module):
    """A binary classifier with one output per image: (N,) instead of (N, C)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(48, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))[:, 0]


class Tuple(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(48, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear(x.flatten(1)), x


@pytest.mark.parametrize("name", [*LABEL_ATTACKS, "cam-ddn"])
def test_float64_inputs_with_a_float32_model(name, linear, wsl):
    model, x, y = wsl if name == "cam-ddn" else linear
    with pytest.raises(InputError, match="model's parameters are torch.float32 but the inputs are torch.float64"):
        get_attack(name)(model, x.double(), y, **KWARGS[name])


@pytest.mark.parametrize("name", [*LABEL_ATTACKS, "cam-ddn"])
@pytest.mark.parametrize("labels, message", [
    (lambda y: y.float(), "must be integer class indices, got dtype torch.float32"),
    (lambda y: y.tolist(), "must be a 1-D tensor with one class index per input"),
    (lambda y: y[:1], "must be a 1-D tensor with one class index per input"),
    (lambda y: torch.full_like(y, -1), "must be class indices >= 0, got -1"),
    (lambda y: torch.full_like(y, 7), "class indices in \\[0, .\\] for this model with . classes, got values up to 7"),
])
def test_bad_labels_raise_instead_of_returning_the_inputs(name, labels, message, linear, wsl):
    """cw and deepfool used to return the input unchanged, silently, for a label -1 or >= C."""
    model, x, y = wsl if name == "cam-ddn" else linear
    with pytest.raises(InputError, match=message):
        get_attack(name)(model, x, labels(y), **KWARGS[name])


@pytest.mark.parametrize("name", [*LABEL_ATTACKS, "cam-ddn"])
def test_an_empty_batch(name, linear, wsl):
    model, x, y = wsl if name == "cam-ddn" else linear
    with pytest.raises(InputError, match="non-empty batch"):
        get_attack(name)(model, x[:0], y[:0], **KWARGS[name])


@pytest.mark.parametrize("name", LABEL_ATTACKS)
@pytest.mark.parametrize("model, message", [
    (OneScore, "must return logits of shape \\(N, C\\) = \\(4, C\\), got \\(4,\\)"),
    (Tuple, "returned a tuple"),
    (NaNLogits, "NaN or infinite logits"),
])
def test_a_model_with_the_wrong_output(name, model, message, linear):
    _, x, y = linear
    with pytest.raises(ModelError, match=message):
        get_attack(name)(model().eval(), x, y, **KWARGS[name])


def test_pgd_refuses_nan_logits_that_appear_during_the_attack():
    torch.manual_seed(0)
    model = NaNOffTheInputs().eval()
    x = torch.randint(0, 256, (4, *SHAPE)).float() / 255
    y = model(x).argmax(1)
    with pytest.raises(ModelError, match="NaN or infinite logits at PGD step 2"):
        get_attack("pgd")(model, x, y, epsilon=0.5, steps=3, random_start=False)


# ------------------------------------------------------------------ run_attack on inputs off the lattice
@pytest.fixture
def resized():
    """8-bit images resized (bilinear, 12 -> 16 pixels): the usual way inputs leave the 8-bit lattice."""
    g = torch.Generator().manual_seed(0)
    eight_bit = torch.randint(0, 256, (12, 3, 12, 12), generator=g).float() / 255
    x = F.interpolate(eight_bit, size=16, mode="bilinear", align_corners=False).clamp(0, 1)
    model = linear_model(3, (3, 16, 16), scale=0.2)
    return model, x, model(x).argmax(1)


def test_off_lattice_inputs_warn_about_the_data_and_verify_changed_samples(resized):
    model, x, y = resized
    assert not bool(on_lattice(x, 256).any())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_attack(model, x, y, attack="ddn", attack_kwargs={"steps": 20}, levels=256, progress=False,
                            keep_adversarials=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, AdvwslWarning)]
    assert len(messages) == 1 and "the inputs are not on the 256-level lattice" in messages[0]
    assert "resized or float data" in messages[0] and "--levels 0" in messages[0]
    assert result.params["inputs_on_lattice"] is False
    changed = (result.adversarials != x).flatten(1).any(1)
    assert bool(changed.any())
    assert bool(on_lattice(result.adversarials[changed], 256).all())  # what the attack changed is 8-bit
    assert torch.equal(result.adversarials[~changed], x[~changed])


def test_an_attack_that_leaves_the_lattice_is_still_blamed_on_off_lattice_inputs(resized):
    model, x, y = resized

    def sloppy(model, inputs, labels, *, targeted=False, levels=256):  # claims to quantize, does not
        return (inputs + 0.3 / 255).clamp(0, 1)

    with pytest.raises(VerificationError, match="attack sloppy changed sample\\(s\\) \\[0, 1, 2"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AdvwslWarning)
            run_attack(model, x, y, attack=sloppy, levels=256, progress=False)


def test_on_lattice_inputs_do_not_warn(resized):
    model, x, y = resized
    x = (x * 255).round() / 255
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdvwslWarning)
        result = run_attack(model, x, model(x).argmax(1), attack="ddn", attack_kwargs={"steps": 10}, levels=256,
                            progress=False)
    assert result.params["inputs_on_lattice"] is True
