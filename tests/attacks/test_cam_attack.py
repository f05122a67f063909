"""The CAM attack (DDN with the goal "CAM moved, label kept"): every reported success keeps the label and
moves the CAM below the Dice threshold; model state, inputs and the lattice are respected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advwsl.attacks import get_attack, run_attack
from advwsl.attacks.cam_ddn import cam_ddn, cam_goal_reached, soft_dice
from advwsl.errors import InputError, ModelError
from advwsl.models.cams import binarize, class_maps, dice_iou


class TinyCamNet(nn.Module):
    """conv -> BN -> ReLU -> conv -> ReLU -> 1x1 CAM head (eq. 3.3), logits = mean of the CAMs (eq. 3.4)."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.head = nn.Conv2d(8, num_classes, 1)

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.head(self.features(x))
        return m.mean((2, 3)), m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cams(x)[0]


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinyCamNet(3).eval()
    x = torch.rand(8, 3, 16, 16)
    x = (x * 255).round() / 255
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def test_successes_keep_label_and_move_cam(setup):
    model, x, y = setup
    adv = cam_ddn(model, x, y, steps=40, dice_threshold=0.5)
    reached, dice = cam_goal_reached(model, x, adv, y, dice_threshold=0.5)
    assert reached.float().mean() >= 0.75  # a random small net's CAM is easy to move
    with torch.no_grad():
        logits, cams = model.cams(adv)
        _, clean_cams = model.cams(x)
    size = x.shape[2:]
    # independent re-computation of the goal for every success
    own, _ = dice_iou(binarize(class_maps(cams, y, size)), binarize(class_maps(clean_cams, y, size)))
    ok = reached
    assert torch.all(logits.argmax(1)[ok] == y[ok])
    assert torch.all(own[ok] < 0.5)
    torch.testing.assert_close(own, dice)
    norms = (adv - x).flatten(1).norm(dim=1)
    assert torch.all(norms[ok] > 0)
    assert torch.all(norms[~ok] == 0)  # failures come back as the original image


def test_lattice_bounds_inputs_and_model_state(setup):
    model, x, y = setup
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    running = model.features[1].running_mean.clone()
    x_copy = x.clone()
    adv = cam_ddn(model, x, y, steps=10)
    assert model.training and flags == [p.requires_grad for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(model.features[1].running_mean, running)  # attacked in eval mode
    torch.testing.assert_close(x, x_copy)
    assert adv.min() >= 0 and adv.max() <= 1
    grid = adv * 255
    assert (grid - grid.round()).abs().max() < 1e-4
    free = cam_ddn(model.eval(), x, y, steps=10, levels=None)
    assert free.min() >= 0 and free.max() <= 1


def test_misclassified_samples_unchanged(setup):
    model, x, y = setup
    wrong = (y + 1) % 3
    adv = cam_ddn(model, x, wrong, steps=5)
    torch.testing.assert_close(adv, x)


def test_lower_threshold_needs_larger_norm(setup):
    model, x, y = setup
    loose = cam_ddn(model, x, y, steps=40, dice_threshold=0.7)
    strict = cam_ddn(model, x, y, steps=40, dice_threshold=0.3)
    ok_loose, _ = cam_goal_reached(model, x, loose, y, dice_threshold=0.7)
    ok_strict, _ = cam_goal_reached(model, x, strict, y, dice_threshold=0.3)
    both = ok_loose & ok_strict
    assert both.sum() >= 3
    n_loose = (loose - x).flatten(1).norm(dim=1)[both]
    n_strict = (strict - x).flatten(1).norm(dim=1)[both]
    assert float(n_loose.median()) <= float(n_strict.median())


def test_soft_dice_equals_dice_on_binary_maps():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 6, 6, generator=g) > 0.5
    b = torch.rand(4, 6, 6, generator=g) > 0.5
    torch.testing.assert_close(soft_dice(a.float(), b), dice_iou(a, b)[0], atol=1e-5, rtol=0)


def test_bad_input(setup):
    model, x, y = setup
    with pytest.raises(InputError, match="no targeted mode"):
        cam_ddn(model, x, y, targeted=True)
    with pytest.raises(ModelError, match="no class activation maps"):
        cam_ddn(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 2)), x, y)
    with pytest.raises(InputError, match="within bounds"):
        cam_ddn(model, x * 2, y)
    with pytest.raises(InputError, match="dice_threshold"):
        cam_ddn(model, x, y, dice_threshold=0.0)


def test_registered():
    assert get_attack("cam-ddn") is cam_ddn


def test_run_attack_with_the_cam_goal(setup):
    """The one runner scores cam-ddn by its spec's success: the CAM goal re-evaluated, label kept."""
    model, x, y = setup
    y = y.clone()
    y[0] = (y[0] + 1) % 3  # one misclassified sample: not attacked, not a success
    result = run_attack(model, x, y, attack="cam-ddn", attack_kwargs={"steps": 20}, batch_size=5, progress=False,
                        keep_adversarials=True)
    assert len(result) == 8 and result.attack == "CAM-DDN" and result.budget == "20"
    assert not result.success[0] and not result.originally_correct[0]
    assert np.all(result.adv_pred[result.success] == result.label[result.success])
    s = result.summary()
    assert 0 <= s["success"] <= 1
    assert s["grads_per_sample"] == 20 and s["forwards_per_sample"] == 22  # clean CAM + steps + final iterate
    assert result.params["goal"] == "cam"
    reached, _ = cam_goal_reached(model, x, result.adversarials, y)
    assert np.array_equal(reached.numpy() & result.originally_correct, result.success)
    curve = result.robustness_curve(num=11)
    assert curve["accuracy"].iloc[0] == pytest.approx(7 / 8)
    assert np.all(np.diff(curve["accuracy"].to_numpy()) <= 0)
