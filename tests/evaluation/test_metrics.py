"""Metrics against scikit-learn and hand computations; streaming meters equal one-shot computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, average_precision_score, confusion_matrix as sk_confusion,
                             f1_score, jaccard_score)

from advwsl.errors import InputError
from advwsl.evaluation.metrics import (BinarySegmentationMeter, ClassificationMeter, ConfusionMeter, accuracy,
                                       average_precision, combined_dice, confusion_matrix, dice_from_iou,
                                       dice_per_image, dice_score, iou_per_class, iou_score,
                                       mean_average_precision, mean_iou)


def test_accuracy_matches_sklearn():
    g = torch.Generator().manual_seed(1)
    scores, labels = torch.randn(97, 4, generator=g), torch.randint(0, 4, (97,), generator=g)
    assert accuracy(scores, labels) == pytest.approx(accuracy_score(labels, scores.argmax(1)))
    assert accuracy(scores.argmax(1), labels) == pytest.approx(accuracy_score(labels, scores.argmax(1)))


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_matches_sklearn(ties):
    g = torch.Generator().manual_seed(2)
    scores = torch.rand(200, generator=g)
    if ties:  # many equal scores: thresholds must be the distinct values
        scores = (scores * 5).floor() / 5
    targets = (torch.rand(200, generator=g) < 0.3).long()
    assert average_precision(scores, targets) == pytest.approx(average_precision_score(targets, scores), abs=1e-12)


def test_average_precision_perfect_and_no_positive():
    assert average_precision(torch.tensor([0.9, 0.8, 0.1]), torch.tensor([1, 1, 0])) == pytest.approx(1.0)
    assert math.isnan(average_precision(torch.tensor([0.9, 0.1]), torch.tensor([0, 0])))


def test_map_matches_sklearn_multiclass_and_multilabel():
    g = torch.Generator().manual_seed(3)
    scores, labels = torch.randn(150, 5, generator=g), torch.randint(0, 5, (150,), generator=g)
    onehot = np.eye(5)[labels.numpy()]
    assert mean_average_precision(scores, labels) == pytest.approx(
        average_precision_score(onehot, scores.numpy(), average="macro"), abs=1e-12)
    multi = (torch.rand(150, 5, generator=g) < 0.4).long()
    assert mean_average_precision(scores, multi) == pytest.approx(
        average_precision_score(multi.numpy(), scores.numpy(), average="macro"), abs=1e-12)


def test_dice_and_iou_match_sklearn_and_eq_3_14():
    g = torch.Generator().manual_seed(4)
    pred, target = torch.rand(3, 16, 16, generator=g) > 0.5, torch.rand(3, 16, 16, generator=g) > 0.6
    d = dice_score(pred, target)
    assert d == pytest.approx(f1_score(target.flatten(), pred.flatten()))
    iou = iou_score(pred, target)
    assert iou == pytest.approx(jaccard_score(target.flatten(), pred.flatten()))
    assert dice_from_iou(iou) == pytest.approx(d)  # eq. 3.14
    per = dice_per_image(pred, target)
    for k in range(3):
        assert per[k].item() == pytest.approx(f1_score(target[k].flatten(), pred[k].flatten()))


def test_dice_hand_values_and_empty_convention():
    g = torch.zeros(1, 4, 4, dtype=torch.bool)
    g[0, :2] = True  # 8 pixels
    s = torch.zeros_like(g)
    s[0, :1] = True  # 4 pixels, all inside g
    assert dice_score(s, g) == pytest.approx(2 * 4 / (8 + 4))
    empty = torch.zeros_like(g)
    assert dice_score(empty, empty) == 1.0 and iou_score(empty, empty) == 1.0
    assert dice_per_image(torch.ones_like(g), empty).item() == 0.0


def test_confusion_iou_and_glas_dice():
    g = torch.Generator().manual_seed(5)
    pred, target = torch.randint(0, 3, (2, 20, 20), generator=g), torch.randint(0, 3, (2, 20, 20), generator=g)
    cm = confusion_matrix(pred, target, 3)
    assert torch.equal(cm, torch.from_numpy(sk_confusion(target.flatten(), pred.flatten(), labels=[0, 1, 2])))
    ious = jaccard_score(target.flatten(), pred.flatten(), average=None)
    assert torch.allclose(iou_per_class(cm), torch.from_numpy(ious).double())
    assert mean_iou(cm) == pytest.approx(ious.mean())
    # eq. 4.14 by hand: benign (1) and malignant (2) counted together
    tp = sum(int(((pred == k) & (target == k)).sum()) for k in (1, 2))
    fp = sum(int(((pred == k) & (target != k)).sum()) for k in (1, 2))
    fn = sum(int(((pred != k) & (target == k)).sum()) for k in (1, 2))
    assert combined_dice(cm) == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_meters_stream_equals_one_shot():
    g = torch.Generator().manual_seed(6)
    scores = torch.softmax(torch.randn(60, 2, generator=g), 1)
    labels = torch.randint(0, 2, (60,), generator=g)
    pred, target = torch.rand(60, 8, 8, generator=g) > 0.5, torch.rand(60, 8, 8, generator=g) > 0.7
    target[:10] = False  # negative (normal) images
    cm_meter, seg, cls = ConfusionMeter(2), BinarySegmentationMeter(), ClassificationMeter(2)
    for sl in (slice(0, 7), slice(7, 33), slice(33, 60)):
        cls.update(scores[sl], labels[sl])
        seg.update(pred[sl], target[sl])
        cm_meter.update(pred[sl].long(), target[sl].long())
    c = cls.compute()
    assert c["accuracy"] == pytest.approx(accuracy(scores, labels))
    assert c["ap"] == pytest.approx(average_precision_score(labels, scores[:, 1]))
    s = seg.compute()
    assert s["dice"] == pytest.approx(dice_per_image(pred, target).mean().item())
    assert s["mdice_positive"] == pytest.approx(dice_per_image(pred[10:], target[10:]).mean().item())
    assert s["dice_pixels"] == pytest.approx(dice_score(pred, target))
    assert s["iou"] == pytest.approx(iou_score(pred, target))
    assert s["miou"] == pytest.approx(cm_meter.compute()["miou"])
    assert cm_meter.compute()["dice_combined"] == pytest.approx(dice_score(pred, target))


def test_bad_inputs_raise_project_errors():
    with pytest.raises(InputError, match="binary"):
        dice_score(torch.rand(4, 4), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="shape"):
        dice_score(torch.ones(4, 4, dtype=torch.bool), torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="num_classes"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)
    with pytest.raises(InputError, match="before any update"):
        ClassificationMeter(3).compute()
    with pytest.raises(InputError, match=r"\(N, 3\)"):
        ClassificationMeter(3).update(torch.rand(4, 2), torch.zeros(4))
    with pytest.raises(InputError, match="labels must be in"):
        mean_average_precision(torch.rand(4, 2), torch.tensor([0, 1, 2, 1]))
