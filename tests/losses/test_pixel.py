"""Pixel losses of the fully supervised U-Net (section 2.1.3.2): closed forms and bad inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advwsl.errors import ConfigError, InputError
from advwsl.losses import CRITERIA, PixelLoss, build_criterion, pixel_targets, soft_dice_loss


def test_pixel_ce_is_the_mean_pixel_cross_entropy_against_the_mask():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 5, 6, generator=g)
    masks = (torch.rand(3, 5, 6, generator=g) > 0.5).float()
    loss, parts = build_criterion("pixel-ce")(logits, torch.zeros(3), masks=masks)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, masks.long()).item())
    assert set(parts) == {"ce"}
    assert pixel_targets(masks).dtype == torch.long and pixel_targets(masks).sum() == masks.sum()


def test_soft_dice_closed_forms():
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    assert soft_dice_loss(target.clone(), target).item() == pytest.approx(0.0, abs=1e-6)  # perfect
    assert soft_dice_loss(1 - target, target).item() == pytest.approx(1.0, abs=1e-6)  # disjoint
    assert soft_dice_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == pytest.approx(0.0)  # both empty
    half = torch.full((1, 2, 2), 0.5)  # 2 * 1 / (2 + 2) = 0.5
    assert soft_dice_loss(half, target).item() == pytest.approx(0.5, abs=1e-6)


def test_pixel_ce_dice_adds_the_weighted_soft_dice():
    logits = torch.zeros(1, 2, 2, 2)  # p(foreground) = 0.5 everywhere
    masks = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    loss, parts = build_criterion("pixel-ce-dice", lambda_dice=2.0, lambda_size=5.0)(logits, None, masks=masks)
    assert parts["dice_loss"].item() == pytest.approx(0.5, abs=1e-5)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(2.0)).item() + 2 * 0.5, abs=1e-5)
    assert PixelLoss.needs_masks and "pixel-ce-dice" in CRITERIA and "image-bce" in CRITERIA


def test_pixel_loss_bad_inputs():
    crit = PixelLoss()
    with pytest.raises(InputError, match="per-pixel logits"):
        crit(torch.zeros(2, 2), torch.zeros(2), masks=torch.zeros(2, 4, 4))
    with pytest.raises(InputError, match="needs the batch masks"):
        crit(torch.zeros(2, 2, 4, 4), torch.zeros(2))
    with pytest.raises(InputError, match="do not match"):
        crit(torch.zeros(2, 2, 4, 4), torch.zeros(2), masks=torch.zeros(2, 3, 3))
    with pytest.raises(ConfigError, match="lambda_dice"):
        PixelLoss(lambda_dice=-1)
    bce = build_criterion("image-bce")
    assert bce.multilabel and bce(torch.zeros(2, 3), torch.ones(2, 3))[0].item() == pytest.approx(3 * 0.6931, 1e-3)
