"""CAM quality and CAM movement metrics: closed forms, agreement with scipy, conventions, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from advwsl.errors import InputError, ModelError
from advwsl.evaluation.cams import (MOVEMENT_COLUMNS, cam_robustness, centre_of_mass, clip_perturbation, compare_maps,
                                    mask_scores, predict_maps, spearman)
from advwsl.models.cams import binarize, class_maps, dice_iou, normalize_maps, require_cams


class TinyCamNet(nn.Module):
    """conv -> ReLU -> 1x1 CAM head (eq. 3.3), logits = spatial mean of the CAMs (eq. 3.4); stride 4."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.head = nn.Conv2d(8, num_classes, 1)

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.head(self.features(x))
        return m.mean((2, 3)), m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cams(x)[0]


def test_dice_iou_closed_form_and_relation():
    pred = torch.zeros(3, 4, 4, dtype=torch.bool)
    target = torch.zeros(3, 4, 4, dtype=torch.bool)
    pred[0, :2] = True          # 8 pixels
    target[0, 1:3] = True       # 8 pixels, 4 shared
    pred[1, 0, 0] = True        # disjoint from an empty target
    dice, iou = dice_iou(pred, target)
    assert dice[0] == pytest.approx(2 * 4 / 16) and iou[0] == pytest.approx(4 / 12)
    assert dice[1] == 0 and iou[1] == 0
    assert dice[2] == 1 and iou[2] == 1  # both empty
    torch.testing.assert_close(dice[:2], 2 * iou[:2] / (1 + iou[:2]))  # eq. 3.14


def test_normalize_maps_range_and_constant():
    maps = torch.randn(4, 5, 6) * 10 + 3
    maps[3] = 7.0
    out = normalize_maps(maps)
    assert out.min() >= 0 and out.max() <= 1
    for i in range(3):
        assert out[i].min() == 0 and out[i].max() == pytest.approx(1.0)
    assert torch.all(out[3] == 0)


def test_class_maps_picks_class_and_upsamples():
    cams = torch.zeros(2, 3, 2, 2)
    cams[0, 1, 0, 0] = 5.0
    cams[1, 2, 1, 1] = 5.0
    maps = class_maps(cams, torch.tensor([1, 2]), (8, 8))
    assert maps.shape == (2, 8, 8)
    assert maps[0, 0, 0] == pytest.approx(1.0) and maps[0, 7, 7] == pytest.approx(0.0)
    assert maps[1, 7, 7] == pytest.approx(1.0) and maps[1, 0, 0] == pytest.approx(0.0)


def test_spearman_matches_scipy_with_ties():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (6, 7, 7), generator=g).float()  # many ties
    b = a + torch.randn(6, 7, 7, generator=g)
    rho = spearman(a, b)
    for i in range(6):
        expected = spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert rho[i].item() == pytest.approx(expected, abs=1e-5)
    assert spearman(a, a.exp()).sub(1).abs().max() < 1e-6          # monotone transform
    assert spearman(a[:1], -a[:1]).item() == pytest.approx(-1.0)
    const = torch.ones(2, 3, 3)
    assert spearman(const, const).tolist() == [1.0, 1.0]
    assert spearman(const, a[:2, :3, :3]).tolist() == [0.0, 0.0]


def test_centre_of_mass_and_shift():
    maps = torch.zeros(3, 10, 20)
    maps[0, 2, 5] = 1.0
    maps[1] = 1.0
    com = centre_of_mass(maps)
    torch.testing.assert_close(com[0], torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(com[1], torch.tensor([4.5, 9.5]))
    torch.testing.assert_close(com[2], torch.tensor([4.5, 9.5]))  # empty map: the image centre
    moved = torch.zeros(3, 10, 20)
    moved[:, 6, 8] = 1.0
    out = compare_maps(maps[:1], moved[:1])
    assert out["com_shift_px"].item() == pytest.approx(5.0)
    assert out["com_shift"].item() == pytest.approx(5.0 / np.hypot(9, 19))


def test_compare_maps_identical_and_disjoint():
    maps = normalize_maps(torch.rand(4, 16, 16))
    same = compare_maps(maps, maps.clone())
    for key in ("cam_dice", "cam_iou", "cam_spearman"):
        assert torch.all(same[key] == 1)
    assert torch.all(same["com_shift"] == 0)
    left = torch.zeros(1, 8, 8)
    left[0, :, :4] = 1
    right = 1 - left
    out = compare_maps(left, right)
    assert out["cam_dice"].item() == 0 and out["cam_iou"].item() == 0
    assert out["cam_spearman"].item() == pytest.approx(-1.0)
    assert out["com_shift_px"].item() == pytest.approx(4.0)


def test_mask_scores_skip_empty_masks():
    maps = torch.zeros(2, 4, 4)
    maps[:, :2] = 1.0
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, :2] = 1.0
    dice, iou, valid = mask_scores(maps, masks)
    assert valid.tolist() == [True, False]
    assert dice[0] == 1 and iou[0] == 1
    assert torch.isnan(dice[1]) and torch.isnan(iou[1])
    with pytest.raises(InputError, match="do not match"):
        mask_scores(maps, torch.zeros(2, 8, 8))


def test_binarize_threshold_checked():
    with pytest.raises(InputError, match="threshold"):
        binarize(torch.zeros(1, 2, 2), 1.5)


def test_clip_perturbation():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, 8, 8, generator=g)
    adv = (x + 0.3 * torch.randn(5, 3, 8, 8, generator=g)).clamp(0, 1)
    norms = (adv - x).flatten(1).norm(dim=1)
    eps = float(norms.median())
    out = clip_perturbation(x, adv, eps)
    new = (out - x).flatten(1).norm(dim=1)
    torch.testing.assert_close(new, norms.clamp(max=eps))
    torch.testing.assert_close(clip_perturbation(x, adv, 0.0), x)
    torch.testing.assert_close(clip_perturbation(x, adv, float(norms.max()) + 1), adv)
    with pytest.raises(InputError, match="non-negative"):
        clip_perturbation(x, adv, -1.0)


def test_require_cams_explains():
    with pytest.raises(ModelError, match="no class activation maps"):
        require_cams(nn.Linear(3, 2))


def test_predict_maps_leaves_model_as_found():
    model = TinyCamNet().train()
    flags = [p.requires_grad for p in model.parameters()]
    preds, maps = predict_maps(model, torch.rand(3, 3, 16, 16))
    assert model.training and flags == [p.requires_grad for p in model.parameters()]
    assert preds.shape == (3,) and maps.shape == (3, 16, 16)
    assert all(p.grad is None for p in model.parameters())


def test_cam_robustness_curves_and_ranges():
    torch.manual_seed(0)
    model = TinyCamNet().eval()
    x = torch.rand(6, 3, 16, 16)
    adv = (x + 0.5 * torch.randn_like(x)).clamp(0, 1)
    masks = torch.zeros(6, 16, 16)
    masks[:3, 4:12, 4:12] = 1
    per, curve, summary = cam_robustness(model, x, adv, masks, num_epsilons=6)
    for col in (*MOVEMENT_COLUMNS, "mask_dice_clean", "mask_iou_clean", "mask_dice_adv", "mask_iou_adv"):
        assert col in per.columns
    first, last = curve.iloc[0], curve.iloc[-1]
    assert first["epsilon"] == 0
    assert first["cam_dice"] == 1 and first["cam_iou"] == 1 and first["cam_spearman"] == pytest.approx(1.0)
    assert first["com_shift"] == 0
    assert first["mask_dice"] == pytest.approx(summary["mask_dice_clean"])
    # the largest budget keeps every perturbation whole: the curve ends at the per-sample means
    assert last["cam_dice"] == pytest.approx(summary["cam_dice"], abs=1e-6)
    assert last["mask_dice"] == pytest.approx(summary["mask_dice_adv"], abs=1e-6)
    for col in ("cam_dice", "cam_iou", "com_shift", "mask_dice", "mask_iou"):
        assert curve[col].between(0, 1).all()
    assert summary["n_with_mask"] == 3 and per["has_mask"].sum() == 3
    # without masks: no localization columns
    per2, curve2, summary2 = cam_robustness(model, x, adv, None, epsilons=[0.0, 1.0])
    assert "mask_dice_clean" not in per2.columns and "mask_dice" not in curve2.columns
    assert list(curve2["epsilon"]) == [0.0, 1.0]
    assert "mask_dice_clean" not in summary2
