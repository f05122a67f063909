"""Metrics of the reference: accuracy (eq. 2.1), average precision and mAP (eq. 2.2), the Dice index
(eq. 2.3) per image and over all pixels, mean Dice over positive (metastatic) images only (Table 2.9),
IoU and mIoU with background (eq. 3.12-3.14) and the combined two-class GlaS Dice (eq. 4.14).

Every metric exists as a function on tensors and as a streaming meter (``update`` per batch, ``compute``
at the end). Meters are safe under ``torch.distributed``: when a process group is initialized, counts are
all-reduced and stored scores are all-gathered across ranks before computing, so sharded evaluation gives
the single-process result. Values are fractions in [0, 1]; tables multiply by 100.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import InputError

__all__ = [
    "accuracy", "average_precision", "mean_average_precision", "dice_score", "dice_per_image",
    "iou_score", "dice_from_iou", "confusion_matrix", "iou_per_class", "mean_iou", "combined_dice",
    "ClassificationMeter", "BinarySegmentationMeter", "ConfusionMeter",
]


# --------------------------------------------------------------------------------------------- helpers
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over ranks (``t`` itself when not distributed)."""
    if not _distributed():
        return t
    out = t.to(_comm_device()).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenation along dim 0 of ``t`` from every rank, in rank order (sizes may differ)."""
    if not _distributed():
        return t
    dev = _comm_device()
    n = torch.tensor([t.shape[0]], dtype=torch.long, device=dev)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=dev)
    padded[: t.shape[0]] = t.to(dev)
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).to(t.device)


def _check_same_shape(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise InputError(f"{what}: predictions have shape {tuple(a.shape)} but targets have shape "
                         f"{tuple(b.shape)}; pass tensors of the same shape")


def _as_bool(t: Tensor, what: str) -> Tensor:
    if t.dtype == torch.bool:
        return t
    if t.is_floating_point() or not bool(((t == 0) | (t == 1)).all()):
        raise InputError(f"{what} must be binary (bool or integer 0/1); got dtype {t.dtype}. Binarize "
                         "scores first (e.g. cams > threshold)")
    return t.bool()


# ------------------------------------------------------------------------------------ classification
def accuracy(scores: Tensor, labels: Tensor) -> float:
    """Eq. 2.1: share of correctly classified samples. ``scores`` (N, C) logits or probabilities (the
    prediction is their arg max) or (N,) predicted labels; ``labels`` (N,)."""
    preds = scores.argmax(dim=1) if scores.dim() == 2 else scores
    if preds.shape != labels.shape:
        raise InputError(f"accuracy: {tuple(preds.shape)} predictions for {tuple(labels.shape)} labels")
    if labels.numel() == 0:
        raise InputError("accuracy of an empty set is undefined; pass at least one sample")
    return (preds == labels).double().mean().item()


def average_precision(scores: Tensor, targets: Tensor) -> float:
    """Average precision of one class, AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds
    (the AP_k of eq. 2.2; identical to scikit-learn's ``average_precision_score``). ``scores`` (N,) any
    real scores, ``targets`` (N,) binary. NaN when there is no positive sample."""
    _check_same_shape(scores, targets, "average_precision")
    if scores.dim() != 1:
        raise InputError(f"average_precision expects 1-D scores, got shape {tuple(scores.shape)}")
    targets = _as_bool(targets, "average_precision targets")
    positives = int(targets.sum())
    if positives == 0:
        return math.nan
    order = torch.argsort(scores.double(), descending=True, stable=True)
    s, t = scores.double()[order], targets[order].double()
    tp, fp = torch.cumsum(t, 0), torch.cumsum(1 - t, 0)
    # keep the last index of each run of equal scores: one point per distinct threshold
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tp, fp = tp[last], fp[last]
    precision, recall = tp / (tp + fp), tp / positives
    delta = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((delta * precision).sum())


def mean_average_precision(scores: Tensor, targets: Tensor) -> float:
    """Eq. 2.2 (as a fraction): mean over classes of the one-vs-rest AP. ``scores`` (N, C); ``targets``
    (N,) class indices (multi-class) or (N, C) binary (multi-label). Classes without any positive sample
    are left out of the mean (their AP is undefined)."""
    if scores.dim() != 2:
        raise InputError(f"mean_average_precision expects (N, C) scores, got shape {tuple(scores.shape)}")
    if targets.dim() == 1:
        if targets.numel() and (targets.min() < 0 or targets.max() >= scores.shape[1]):
            raise InputError(f"labels must be in [0, {scores.shape[1] - 1}] for {scores.shape[1]} classes; got "
                             f"[{int(targets.min())}, {int(targets.max())}]")
        targets = torch.nn.functional.one_hot(targets.long(), scores.shape[1])
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
    aps = [a for a in aps if not math.isnan(a)]
    return sum(aps) / len(aps) if aps else math.nan


# -------------------------------------------------------------------------------------- segmentation
def _dice_counts(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    """Eq. 3.13: 2TP / (2TP + FP + FN); 1 when both sets are empty (a correct empty prediction)."""
    den = 2 * tp + fp + fn
    return torch.where(den > 0, 2 * tp / den.clamp_min(1), torch.ones_like(den, dtype=torch.float64))


def dice_score(pred: Tensor, target: Tensor) -> float:
    """Eq. 2.3 over all pixels given: 2|G ∩ S| / (|G| + |S|) for binary masks of the same shape
    (1 when both are empty)."""
    _check_same_shape(pred, target, "dice_score")
    p, g = _as_bool(pred, "dice_score pred"), _as_bool(target, "dice_score target")
    tp = (p & g).sum().double()
    return float(_dice_counts(tp, (p & ~g).sum().double(), (~p & g).sum().double()))


def dice_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """Eq. 2.3 for each image of a batch of binary masks (N, ...): a float64 tensor (N,)."""
    _check_same_shape(pred, target, "dice_per_image")
    p = _as_bool(pred, "dice_per_image pred").flatten(1)
    g = _as_bool(target, "dice_per_image target").flatten(1)
    tp = (p & g).sum(1).double()
    return _dice_counts(tp, (p & ~g).sum(1).double(), (~p & g).sum(1).double())


def iou_score(pred: Tensor, target: Tensor) -> float:
    """Eq. 3.12: |A ∩ B| / |A ∪ B| for binary masks (1 when both are empty)."""
    _check_same_shape(pred, target, "iou_score")
    p, g = _as_bool(pred, "iou_score pred"), _as_bool(target, "iou_score target")
    union = int((p | g).sum())
    return 1.0 if union == 0 else int((p & g).sum()) / union


def dice_from_iou(iou: float | Tensor) -> float | Tensor:
    """Eq. 3.14: Dice = 2 IoU / (1 + IoU)."""
    return 2 * iou / (1 + iou)


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, *, ignore_index: int | None = None
                     ) -> Tensor:
    """Pixel confusion matrix (num_classes, num_classes), int64, rows = true class, columns = predicted.
    ``pred`` and ``target`` hold class indices (background included as a class); pixels whose target is
    ``ignore_index`` are skipped."""
    _check_same_shape(pred, target, "confusion_matrix")
    p, g = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = g != ignore_index
        p, g = p[keep], g[keep]
    for name, t in (("predictions", p), ("targets", g)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise InputError(f"confusion_matrix: {name} hold class {int(t.min())}..{int(t.max())} but "
                             f"num_classes={num_classes}; pass num_classes including the background")
    return torch.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_per_class(cm: Tensor) -> Tensor:
    """Eq. 3.13 per class from a confusion matrix: TP / (TP + FP + FN), NaN for a class absent from both
    predictions and targets."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))


def mean_iou(cm: Tensor) -> float:
    """mIoU: the mean of :func:`iou_per_class` over the classes that occur (background included, as for the
    21 classes of Pascal VOC in section 3.4.1)."""
    iou = iou_per_class(cm)
    iou = iou[~torch.isnan(iou)]
    return float(iou.mean()) if iou.numel() else math.nan


def combined_dice(cm: Tensor, classes: tuple[int, ...] = (1, 2)) -> float:
    """Eq. 4.14: one Dice over all pixels for several foreground classes together,
    2 sum TP_k / (2 sum TP_k + sum FP_k + sum FN_k) (the GlaS Dice with benign=1, malignant=2)."""
    cm = cm.double()
    idx = torch.tensor(classes, dtype=torch.long)
    tp = cm.diagonal()[idx].sum()
    fp = (cm.sum(0)[idx] - cm.diagonal()[idx]).sum()
    fn = (cm.sum(1)[idx] - cm.diagonal()[idx]).sum()
    return float(_dice_counts(tp, fp, fn))


# ------------------------------------------------------------------------------------ streaming meters
class ClassificationMeter:
    """Streaming accuracy (eq. 2.1), AP and mAP (eq. 2.2).

    ``update(scores, labels)`` with class probabilities (or logits) (N, C) and labels (N,) (multi-class)
    or (N, C) binary (``multilabel=True``, probabilities thresholded at 0.5 for accuracy). Scores are kept
    (AP needs the ranking of all samples) and gathered from every rank in ``compute``.
    ``compute()`` returns ``accuracy``, ``map`` and, for two classes, ``ap`` (AP of class 1, the positive
    class of Tables 2.5 and 2.8), and ``n`` (number of samples).
    """

    def __init__(self, num_classes: int, *, multilabel: bool = False) -> None:
        if num_classes < 2 and not multilabel:
            raise InputError(f"num_classes must be >= 2 for a multi-class problem, got {num_classes}")
        self.num_classes, self.multilabel = int(num_classes), multilabel
        self.reset()

    def reset(self) -> None:
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []

    def update(self, scores: Tensor, labels: Tensor) -> None:
        if scores.dim() != 2 or scores.shape[1] != self.num_classes:
            raise InputError(f"scores must be (N, {self.num_classes}), got {tuple(scores.shape)}")
        expected = (scores.shape[0], self.num_classes) if self.multilabel else (scores.shape[0],)
        if tuple(labels.shape) != expected:
            raise InputError(f"labels must have shape {expected} for these scores, got {tuple(labels.shape)}")
        self._scores.append(scores.detach().double().cpu())
        self._labels.append(labels.detach().long().cpu())

    def compute(self) -> dict[str, float]:
        empty_s = torch.zeros((0, self.num_classes), dtype=torch.float64)
        empty_l = torch.zeros((0, self.num_classes) if self.multilabel else (0,), dtype=torch.long)
        scores = all_gather_cat(torch.cat(self._scores) if self._scores else empty_s)
        labels = all_gather_cat(torch.cat(self._labels) if self._labels else empty_l)
        if scores.shape[0] == 0:
            raise InputError("ClassificationMeter.compute called before any update")
        if self.multilabel:
            acc = ((scores > 0.5).long() == labels).double().mean().item()
        else:
            acc = accuracy(scores, labels)
        out = {"accuracy": acc, "map": mean_average_precision(scores, labels), "n": float(scores.shape[0])}
        if self.num_classes == 2 and not self.multilabel:
            out["ap"] = average_precision(scores[:, 1], labels == 1)
        return out


class BinarySegmentationMeter:
    """Streaming Dice and IoU of binary masks (foreground vs background).

    ``compute()`` returns ``dice`` (eq. 2.3 averaged per image, the reference's default), ``dice_pixels``
    (eq. 2.3 over all pixels of the set), ``mdice_positive`` (per-image Dice averaged over images whose
    true mask is not empty: the "mDice metastatic" of Table 2.9), ``iou`` (eq. 3.12 over all pixels),
    ``miou`` (mean of background and foreground IoU, eq. 3.12-3.14) and ``n_images``.
    """

    # per-image dice sum, images, positive-image dice sum, positive images, tp, fp, fn, tn
    _FIELDS = 8

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._acc = torch.zeros(self._FIELDS, dtype=torch.float64)

    def update(self, pred: Tensor, target: Tensor) -> None:
        _check_same_shape(pred, target, "BinarySegmentationMeter.update")
        if pred.dim() < 2:
            raise InputError(f"masks must be (N, H, W) or (N, ...); got shape {tuple(pred.shape)}")
        p = _as_bool(pred, "predicted masks").flatten(1)
        g = _as_bool(target, "true masks").flatten(1)
        tp, fp = (p & g).sum(1).double(), (p & ~g).sum(1).double()
        fn, tn = (~p & g).sum(1).double(), (~p & ~g).sum(1).double()
        d = _dice_counts(tp, fp, fn)
        positive = g.any(1)
        self._acc += torch.stack([d.sum(), d.new_tensor(float(d.numel())), d[positive].sum(),
                                  d.new_tensor(float(positive.sum())), tp.sum(), fp.sum(), fn.sum(),
                                  tn.sum()]).cpu()

    def compute(self) -> dict[str, float]:
        s, n, sp, npos, tp, fp, fn, tn = all_reduce_sum(self._acc).tolist()
        if n == 0:
            raise InputError("BinarySegmentationMeter.compute called before any update")
        cm = torch.tensor([[tn, fp], [fn, tp]], dtype=torch.float64)
        return {"dice": s / n, "dice_pixels": float(_dice_counts(*(torch.tensor(v) for v in (tp, fp, fn)))),
                "mdice_positive": sp / npos if npos else math.nan,
                "iou": float(iou_per_class(cm)[1]) if tp + fp + fn > 0 else 1.0, "miou": mean_iou(cm),
                "n_images": n}


class ConfusionMeter:
    """Streaming pixel confusion matrix over ``num_classes`` classes (background = class 0 included).

    ``compute()`` returns ``miou`` (eq. 3.12 averaged over the classes that occur), ``pixel_accuracy``,
    ``dice_combined`` (eq. 4.14 over ``foreground`` classes, 1..C-1 by default) and ``iou_<k>`` per class.
    """

    def __init__(self, num_classes: int, *, foreground: tuple[int, ...] | None = None,
                 ignore_index: int | None = None) -> None:
        if num_classes < 2:
            raise InputError(f"num_classes must count the background too (>= 2), got {num_classes}")
        self.num_classes, self.ignore_index = int(num_classes), ignore_index
        self.foreground = tuple(foreground) if foreground is not None else tuple(range(1, num_classes))
        self.reset()

    def reset(self) -> None:
        self.matrix = torch.zeros((self.num_classes, self.num_classes), dtype=torch.long)

    def update(self, pred: Tensor, target: Tensor) -> None:
        self.matrix += confusion_matrix(pred, target, self.num_classes, ignore_index=self.ignore_index).cpu()

    def compute(self) -> dict[str, float]:
        cm = all_reduce_sum(self.matrix)
        total = int(cm.sum())
        if total == 0:
            raise InputError("ConfusionMeter.compute called before any update")
        out = {"miou": mean_iou(cm), "pixel_accuracy": float(cm.diagonal().sum()) / total,
               "dice_combined": combined_dice(cm, self.foreground)}
        out.update({f"iou_{k}": float(v) for k, v in enumerate(iou_per_class(cm))})
        return out
