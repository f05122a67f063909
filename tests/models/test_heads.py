"""Closed forms of the pooling heads (eq. 1.2-1.9, 3.1-3.11) and the pixel-level predictions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from advwsl.errors import InputError
from advwsl.models.cams import class_masks, foreground_masks, pixel_predictions
from advwsl.models.heads import (CAMHead, DeepMILHead, DeepMILMultiHead, LSEHead, MaxHead, WildcatHead,
                                 average_pool, lse_pool, max_pool, resolve_k, wildcat_pool)


@pytest.fixture
def cams():
    return torch.randn(3, 4, 5, 6, dtype=torch.float64)


def test_cam_head_is_gap_then_linear():
    # eq. 3.4: averaging the CAMs equals classifying the averaged features
    head = CAMHead(8, 3).double()
    feats = torch.randn(2, 8, 5, 7, dtype=torch.float64)
    logits, cams = head(feats)
    assert cams.shape == (2, 3, 5, 7)
    torch.testing.assert_close(logits, cams.mean(dim=(2, 3)))
    linear = F.linear(feats.mean(dim=(2, 3)), head.classifier.weight[:, :, 0, 0], head.classifier.bias)
    torch.testing.assert_close(logits, linear)


def test_average_and_max_pool(cams):
    torch.testing.assert_close(average_pool(cams), cams.mean(dim=(2, 3)))
    torch.testing.assert_close(max_pool(cams), cams.flatten(2).max(dim=2).values)
    head = MaxHead(8, 3)
    logits, maps = head(torch.randn(2, 8, 4, 4))
    torch.testing.assert_close(logits, maps.flatten(2).max(dim=2).values)


def test_lse_limits_and_reference(cams):
    # eq. 3.6 directly (safe here: small values)
    for q in (0.5, 1.0, 10.0):
        ref = torch.log(torch.exp(q * cams).mean(dim=(2, 3))) / q
        torch.testing.assert_close(lse_pool(cams, q), ref)
    torch.testing.assert_close(lse_pool(cams, 1e-6), cams.mean(dim=(2, 3)), atol=1e-5, rtol=0)
    hw = cams.shape[2] * cams.shape[3]
    big = lse_pool(cams, 1e4)
    peak = max_pool(cams)
    assert torch.all(big <= peak + 1e-12)
    assert torch.all(peak - big <= math.log(hw) / 1e4 + 1e-9)


def test_lse_does_not_overflow():
    cams = torch.randn(2, 3, 4, 4) * 1000  # q * M up to ~1e5: exp would overflow without eq. 3.7
    cams.requires_grad_(True)
    out = lse_pool(cams, 100.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, cams.amax(dim=(2, 3)), atol=0.05, rtol=0)
    out.sum().backward()
    assert torch.isfinite(cams.grad).all()
    # the gradient of LSE is the softmax of q*M: it sums to 1 per map
    torch.testing.assert_close(cams.grad.sum(dim=(2, 3)), torch.ones(2, 3))


def test_lse_head_default_q_and_bad_q():
    assert LSEHead(4, 2).q == 10.0
    with pytest.raises(InputError, match="q"):
        LSEHead(4, 2, q=0)
    with pytest.raises(InputError, match="q"):
        lse_pool(torch.zeros(1, 1, 2, 2), float("inf"))


def test_wildcat_closed_forms(cams):
    hw = cams.shape[2] * cams.shape[3]
    torch.testing.assert_close(wildcat_pool(cams, kmax=1, alpha=0.0), max_pool(cams))
    torch.testing.assert_close(wildcat_pool(cams, kmax=hw, alpha=0.0), average_pool(cams))
    torch.testing.assert_close(wildcat_pool(cams, kmax=1.0, alpha=0.0), average_pool(cams))
    # k+ = k- = hw, alpha = 1: twice the mean (eq. 3.8 is not divided by 2)
    torch.testing.assert_close(wildcat_pool(cams, kmax=hw, alpha=1.0), 2 * average_pool(cams))


def test_wildcat_by_hand():
    cams = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    # (16 + 15) / 2 + 0.5 * (1 + 2 + 3) / 3
    assert wildcat_pool(cams, kmax=2, kmin=3, alpha=0.5).item() == pytest.approx(16.5)
    # fractions: 10 % of 16 positions rounds to 2
    assert resolve_k(0.1, 16) == 2 and resolve_k(0.01, 16) == 1 and resolve_k(40, 16) == 16
    assert wildcat_pool(cams, kmax=0.1, alpha=0.6).item() == pytest.approx(15.5 + 0.6 * 1.5)
    assert wildcat_pool(cams, kmax=2, kmin=0, alpha=0.6).item() == pytest.approx(15.5)


def test_wildcat_bad_k():
    cams = torch.zeros(1, 1, 2, 2)
    for bad in (0, -1, 1.5, 0.0, float("nan"), "0.1", True):
        with pytest.raises(InputError, match="kmax"):
            wildcat_pool(cams, kmax=bad)
    with pytest.raises(InputError, match="modalities"):
        WildcatHead(4, 2, modalities=0)


def test_wildcat_head_modalities_are_averaged():
    torch.manual_seed(0)
    head = WildcatHead(6, 3, modalities=4).double()
    assert (head.kmax, head.kmin, head.alpha, head.modalities) == (0.1, None, 0.6, 4)
    feats = torch.randn(2, 6, 10, 10, dtype=torch.float64)
    logits, cams = head(feats)
    maps = head.classifier(feats).view(2, 3, 4, 10, 10)
    torch.testing.assert_close(cams, maps.mean(dim=2))
    torch.testing.assert_close(logits, wildcat_pool(cams, 0.1, 0.1, 0.6))
    # averaging modalities = one linear layer with averaged weights (section 3.4.3)
    w = head.classifier.weight.view(3, 4, 6).mean(dim=1)
    b = head.classifier.bias.view(3, 4).mean(dim=1)
    torch.testing.assert_close(cams, torch.einsum("ck,nkhw->nchw", w, feats) + b.view(1, 3, 1, 1))


@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("per_class", [False, True])
def test_deepmil_attention(gated, per_class):
    head = DeepMILHead(8, 3, hidden=16, gated=gated, per_class=per_class).double()
    feats = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    att = head.attention(feats)
    assert att.shape == (2, 3 if per_class else 1, 5, 6)
    torch.testing.assert_close(att.sum(dim=(2, 3)), torch.ones(att.shape[:2], dtype=torch.float64))
    logits, cams = head(feats)
    # eq. 1.4: bag representation = attention-weighted instance features, then the scoring layer
    bags = torch.einsum("nbhw,nkhw->nbk", att, feats)
    if per_class:
        expected = (bags * head.weight).sum(2) + head.bias
    else:
        expected = head.classifier(bags[:, 0])
    torch.testing.assert_close(logits, expected)
    # localization rule of section 1.3.4: positive iff attention > 1/(hw)
    assert cams.shape == (2, 3, 5, 6)
    assert torch.equal(foreground_masks(cams), (att > 1 / 30).expand_as(cams))


def test_deepmil_adapted_by_default_for_more_than_two_classes():
    assert not DeepMILHead(4, 2).per_class
    assert DeepMILHead(4, 3).per_class
    assert not DeepMILHead(4, 3, per_class=False).per_class


def test_deepmil_gated_formula():
    head = DeepMILHead(4, 2, hidden=5, gated=True).double()
    feats = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    weight, bias = head.attention_vu.weight[:, :, 0, 0], head.attention_vu.bias
    v = torch.tanh(torch.einsum("lk,nkhw->nlhw", weight[:5], feats) + bias[:5].view(1, -1, 1, 1))
    u = torch.sigmoid(torch.einsum("lk,nkhw->nlhw", weight[5:], feats) + bias[5:].view(1, -1, 1, 1))
    psi = torch.einsum("l,nlhw->nhw", head.attention_w.weight.view(-1), v * u) + head.attention_w.bias
    torch.testing.assert_close(head.attention_logits(feats)[:, 0], psi)  # eq. 1.6


def test_deepmil_multi_closed_forms():
    torch.manual_seed(0)
    head = DeepMILMultiHead(8, 4, dropout=0.3).double()
    feats = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    head.eval()
    logits, cams = head(feats)
    att = torch.softmax(cams.flatten(2), dim=2)
    torch.testing.assert_close(logits, (att * cams.flatten(2)).sum(2))  # eq. 3.11
    # eq. 3.10 with a linear phi equals eq. 3.11: phi of the class-wise bag representations
    bags = torch.einsum("ncp,nkp->nck", att, feats.flatten(2))
    phi = torch.einsum("nck,ck->nc", bags, head.classifier.weight[:, :, 0, 0]) + head.classifier.bias
    torch.testing.assert_close(logits, phi)
    # d = 1 in training: every weight is 1/(hw), i.e. average pooling (section 3.4.4)
    head.dropout = 1.0
    head.train()
    logits_avg, cams_train = head(feats)
    torch.testing.assert_close(logits_avg, cams_train.mean(dim=(2, 3)))
    # d = 0: training equals evaluation
    head.dropout = 0.0
    torch.testing.assert_close(head(feats)[0], logits)
    # 0 < d < 1: a fraction d of the scores is dropped (the CAMs themselves are not)
    head.dropout = 0.3
    torch.manual_seed(1)
    big = torch.randn(1, 8, 40, 40, dtype=torch.float64)
    m = head.classifier(big)
    a = head.attention(m)
    torch.testing.assert_close(a.sum(dim=(2, 3)), torch.ones(1, 4, dtype=torch.float64))
    torch.testing.assert_close(head(big)[1], m)
    with pytest.raises(InputError, match="dropout"):
        DeepMILMultiHead(4, 2, dropout=1.5)


def test_deepmil_multi_dropout_fraction():
    head = DeepMILMultiHead(2, 1, dropout=0.3).train()
    cams = torch.full((1, 1, 100, 100), 5.0)
    att = head.attention(cams)  # dropped instances have score 0, kept ones 5
    dropped = (att < att.max() / 2).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.02)


def test_pixel_predictions_background_rule():
    cams = torch.tensor([[[[-1.0, 2.0]], [[0.5, 3.0]]]])  # (1, 2, 1, 2)
    assert pixel_predictions(cams).tolist() == [[[2, 2]]]
    cams = torch.tensor([[[[-1.0, 2.0]], [[-0.5, 1.0]]]])
    assert pixel_predictions(cams).tolist() == [[[0, 1]]]  # background where no class > 0
    assert foreground_masks(cams).tolist() == [[[[False, True]], [[False, True]]]]
    assert class_masks(cams, torch.tensor([1])).tolist() == [[[False, True]]]
    with pytest.raises(InputError, match="classes"):
        class_masks(cams, torch.tensor([0, 1]))
    with pytest.raises(InputError, match="CAMs"):
        pixel_predictions(torch.zeros(2, 3))
