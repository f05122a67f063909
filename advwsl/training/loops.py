"""Training and evaluation loops for the reference's models (sections 2.1.3, 3.4.2 and 4.4.2):
``train_one_epoch``, ``evaluate`` and ``fit`` (a full run with validation every epoch, best and last
checkpoints, resumable state, metrics CSV, learning curves and a summary), DDP-ready under ``torchrun``.

Batches may be dicts (``image``, ``label`` and optionally ``mask`` and ``index``, as the datasets of
:mod:`advwsl.data` return them) or tuples ``(image, label[, mask])``. Images are in [0, 1].

CAM-based localization (Evaluation B, section 2.1.2.1). The CAM of one class per image (``cam_class``:
the true class as on GlaS, the predicted class, or a fixed class index such as the metastatic class of
CAMELYON16) is upsampled bilinearly to the input size and binarized by ``cam_rule`` (one of
:data:`advwsl.models.cams.CAM_RULES`: ``"zero"``, the reference's M_c > 0, by default; ``"argmax"``;
``"minmax"``; see :func:`advwsl.models.cams.cam_masks`).

Beside it, wherever the dataset's masks are the region of the image's own class and two or more classes
carry one (``region_classes``: GlaS's benign and malignant glands), the Dice of eq. 4.14 over those pixel
classes together (``dice_combined``): every pixel gets the class of ``argmax([0, M_1, ..., M_C])`` (eq.
4.6 / section 3.4.2) and the truth is background, or the image's class inside its mask; a gland given the
wrong grade counts as a false positive of one class and a false negative of the other, which the binary
Dice of the true class's map does not see. Multi-label datasets (Pascal VOC, chapter 3) carry masks of
class indices (0 background, ``k + 1`` class ``k``, 255 void, ignored); their pixels get the same arg max
and the evaluation reports the IoU of every class (``iou_<k>``, background ``iou_0``) and their mean
(``miou``, eq. 3.12-3.14). A segmentation model (per-pixel logits ``(N, 2, H, W)``, the U-Net of section
2.1.3.2) is evaluated by the same Dice / IoU meters on its predicted foreground (arg max = 1); it has no
image classification metrics.

The adversarial-training hook: ``perturb(model, images, labels) -> images`` runs on every training batch
after it is moved to the device and before the forward pass, with the unwrapped classifier in train mode
(the hook freezes it itself if needed). Optional methods are used when present: ``perturb.reset()`` at
the start of each epoch, ``perturb.stats() -> dict[str, float]`` merged into the epoch's training metrics
(reduced over ranks as its optional ``stats_reduction`` mapping says: ``"mean"``, ``"sum"`` or ``"max"``),
``perturb.state_dict()`` / ``load_state_dict()`` saved with the resumable state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any, Protocol, runtime_checkable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError, InputError
from ..evaluation.metrics import BinarySegmentationMeter, ClassificationMeter, ConfusionMeter, all_reduce_sum
from ..losses import as_criterion, ImageLabelLoss, SizeAnnotator, pixel_targets, size_targets
from ..models.cams import cam_masks, pixel_predictions, upsample_cams
from ..models.wsl import tta_cams
from ..utils import model_device
from .distributed import reduce_over_ranks

__all__ = ["train_one_epoch", "evaluate", "WithCams", "unwrap", "Perturb", "VOID_INDEX"]

#: Pixels of a class-index mask that no class claims (Pascal VOC's object borders): left out of the IoU.
VOID_INDEX = 255

Perturb = Callable[[nn.Module, Tensor, Tensor], Tensor]


@runtime_checkable
class PerturbWithStats(Protocol):
    """A perturbation hook that also reports statistics of what it produced each epoch (the adversarial
    training of :mod:`advwsl.defenses`): ``stats()``, and optionally how each combines over DDP ranks (a
    class attribute ``stats_reduction``: ``"sum"``, ``"max"``, else the mean)."""

    def __call__(self, model: nn.Module, images: Tensor, labels: Tensor) -> Tensor: ...

    def stats(self) -> dict[str, float]: ...


class WithCams(nn.Module):
    """Wraps a WSL model so that ``forward`` returns ``(logits, cams)``; wrap this (not the model) in
    DistributedDataParallel when the loss needs the CAMs, so gradients are synchronized."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.cams(x)


def unwrap(model: nn.Module) -> nn.Module:
    """The classifier inside DistributedDataParallel and/or :class:`WithCams`."""
    if isinstance(model, DistributedDataParallel):
        model = model.module
    return model.model if isinstance(model, WithCams) else model


def _unpack(batch: Any) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    if isinstance(batch, dict):
        if "image" not in batch or "label" not in batch:
            raise InputError(f"a batch dict needs 'image' and 'label' keys, got {sorted(batch)}")
        return batch["image"], batch["label"], batch.get("mask"), batch.get("index")
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1], (batch[2] if len(batch) == 3 else None), None
    raise InputError(f"a batch must be a dict with 'image' and 'label' or a tuple (image, label[, mask]); got "
                     f"{type(batch).__name__}")


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()


def _to_device(x: Tensor, device: torch.device, channels_last: bool) -> Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _progress(enabled: bool, desc: str, total: int | None):
    """A tqdm bar (or None when disabled or off rank 0) that is advanced by hand and never sees the loader.

    Passing the loader to tqdm changed training: ``tqdm.auto``'s class calls ``iter()`` on its iterable in
    its constructor, and every DataLoader iterator draws its base seed from torch's global generator, so
    each epoch made one extra draw and shifted every later random augmentation. The loops iterate each
    loader exactly once, whatever the display."""
    if not enabled or (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0):
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=desc, total=total, leave=False, dynamic_ncols=True)


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, *,
                    criterion: nn.Module | None = None, scheduler: Any | None = None,
                    perturb: Perturb | None = None, size_annotator: SizeAnnotator | None = None,
                    amp: bool = False, channels_last: bool = False, progress: bool = False,
                    desc: str = "train") -> dict[str, float]:
    """One pass over ``loader`` in train mode; returns the epoch's metrics (averaged over all ranks):
    ``loss`` and the loss parts (``cls``, ``size``, ``entropy``, ``alpha``, ``scale`` when present),
    ``accuracy`` of the training predictions, ``lr`` the epoch's last step used (with a per-iteration
    ``scheduler``, the lr after that step belongs to the next epoch), ``images``, ``seconds``,
    ``images_per_s``, and the hook's ``perturb.stats()``.

    ``model`` may be wrapped in DistributedDataParallel (around :class:`WithCams` when ``criterion`` needs
    the CAMs). ``criterion`` defaults to the image-label cross-entropy (eq. 4.4); a size criterion gets its
    true sizes from the batch masks through ``size_annotator`` (default: exact sizes). ``scheduler`` is
    stepped after every iteration. ``amp`` runs forward passes under bf16 autocast.
    """
    criterion = as_criterion(criterion) if criterion is not None else ImageLabelLoss()
    base = unwrap(model)
    size_annotator = _check_training(model, base, criterion, size_annotator)
    if hasattr(perturb, "reset"):
        perturb.reset()
    model.train()
    criterion.train()
    tally = _Tally()
    start = time.perf_counter()
    bar = _progress(progress, desc, len(loader) if hasattr(loader, "__len__") else None)
    lr = optimizer.param_groups[0]["lr"]
    try:
        for batch in loader:
            lr = optimizer.param_groups[0]["lr"]
            loss, parts, logits, y = _train_step(model, base, batch, optimizer, criterion, scheduler, perturb,
                                                 size_annotator, amp=amp, channels_last=channels_last, desc=desc)
            tally.add(loss, parts, logits, y)
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.4f}", acc=f"{tally.accuracy():.3f}", refresh=False)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    out = tally.reduce(time.perf_counter() - start, lr=lr)
    if isinstance(perturb, PerturbWithStats):
        out.update(reduce_over_ranks({k: float(v) for k, v in perturb.stats().items()},
                                     vars(type(perturb)).get("stats_reduction")))
    return out


def _check_training(model: nn.Module, base: nn.Module, criterion: nn.Module,
                    size_annotator: SizeAnnotator | None) -> SizeAnnotator | None:
    """Refuse a CAM loss the model cannot serve; the size annotator a size loss needs (exact sizes)."""
    needs_cams = criterion.needs_cams
    if needs_cams and isinstance(model, DistributedDataParallel) and not isinstance(model.module, WithCams):
        raise ConfigError("under DistributedDataParallel a CAM-based loss needs DDP(WithCams(model)) so that the "
                          "CAM forward pass synchronizes gradients")
    if needs_cams and not hasattr(base, "cams"):
        raise ConfigError(f"the loss {type(criterion).__name__} needs CAMs but {type(base).__name__} has no cams()")
    if criterion.needs_sizes and size_annotator is None:
        size_annotator = SizeAnnotator(base.num_classes)
    return size_annotator


def _loss_inputs(criterion: nn.Module, labels: Tensor, masks: Tensor | None, indices: Tensor | None,
                 size_annotator: SizeAnnotator | None, device: torch.device) -> tuple[Tensor | None, dict]:
    """The true sizes of a size loss and the masks of a pixel loss, from the batch's masks."""
    sizes, extra = None, {}
    if criterion.needs_masks:
        if masks is None:
            raise InputError("a pixel loss needs masks in the batches (a dataset with a 'mask' per sample)")
        extra["masks"] = masks.to(device, non_blocking=True)
    if criterion.needs_sizes:
        if masks is None:
            raise InputError("size supervision needs masks in the batches (a dataset with a 'mask' per sample)")
        sizes = size_annotator(masks, labels, indices).to(device)
    return sizes, extra


def _train_step(model: nn.Module, base: nn.Module, batch: Any, optimizer: torch.optim.Optimizer,
                criterion: nn.Module, scheduler: Any, perturb: Perturb | None,
                size_annotator: SizeAnnotator | None, *, amp: bool, channels_last: bool,
                desc: str) -> tuple[Tensor, dict, Tensor, Tensor]:
    """One optimization step on ``batch`` (perturbed by the hook first); ``(loss, parts, logits, labels)``."""
    device = model_device(base)
    images, labels, masks, indices = _unpack(batch)
    x = _to_device(images, device, channels_last)
    y = labels.to(device, non_blocking=True)
    sizes, extra = _loss_inputs(criterion, labels, masks, indices, size_annotator, device)
    if perturb is not None:
        x = perturb(base, x, y)
    with _autocast(device, amp):
        if criterion.needs_cams:
            logits, cams = model(x) if isinstance(model, (DistributedDataParallel, WithCams)) else base.cams(x)
        else:
            logits, cams = model(x), None
        loss, parts = criterion(logits, y, cams=cams, sizes=sizes, input_size=tuple(x.shape[-2:]), **extra)
    if not torch.isfinite(loss):
        raise InputError(f"the training loss became {loss.item()} at {desc}; lower the learning rate or check "
                         "the inputs (images must be finite and in [0, 1])")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss, parts, logits, y


class _Tally:
    """Running sums of one training epoch (images, correct predictions, loss and its parts x images)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.n_seen = torch.zeros((), dtype=torch.float64)
        self.correct = torch.zeros((), dtype=torch.float64)

    def add(self, loss: Tensor, parts: dict, logits: Tensor, y: Tensor) -> None:
        n = y.shape[0]
        self.n_seen += n
        if y.dim() == 1 and logits.dim() == 2:
            self.correct += (logits.detach().argmax(1) == y).sum().double().cpu()
        for k, v in {"loss": loss.detach(), **parts}.items():
            self.sums[k] = self.sums.get(k, torch.zeros((), dtype=torch.float64)) + float(v) * n

    def accuracy(self) -> float:
        return float(self.correct / self.n_seen.clamp_min(1))

    def reduce(self, seconds: float, *, lr: float) -> dict[str, float]:
        """Means over every rank's images, ``accuracy``, ``lr``, ``images``, ``seconds``, ``images_per_s``."""
        keys = sorted(self.sums)
        reduced = all_reduce_sum(torch.stack([self.n_seen, self.correct, *(self.sums[k] for k in keys)]))
        n_all = max(reduced[0].item(), 1.0)
        out = {k: v / n_all for k, v in zip(keys, reduced[2:].tolist())}
        out.update(accuracy=reduced[1].item() / n_all, lr=lr, images=reduced[0].item(), seconds=seconds,
                   images_per_s=reduced[0].item() / max(seconds, 1e-9))
        return out


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, criterion: nn.Module | None = None,
             cam_rule: str = "zero", cam_class: str | int = "true", region_classes: Sequence[int] | None = None,
             tta: bool = False, amp: bool = False, channels_last: bool = False, progress: bool = False,
             desc: str = "eval") -> dict[str, float]:
    """Evaluate in eval mode, streaming over ``loader`` (each rank its own shard; results reduced over ranks).

    Returns ``loss`` (the criterion's loss with exact sizes, or cross-entropy), ``accuracy`` (eq. 2.1),
    ``map`` (eq. 2.2), ``ap`` for two classes and ``n``; when the batches carry masks and the model has
    CAMs, also the CAM localization metrics ``dice`` (per image), ``dice_pixels``, ``mdice_positive``,
    ``iou`` and ``miou`` (eq. 2.3, 3.12-3.14) with the CAM of ``cam_class`` binarized by ``cam_rule``,
    ``dice_combined`` (eq. 4.14) when two or more ``region_classes`` carry regions, and for multi-label
    masks ``miou`` and ``iou_<k>`` (see the module docstring). ``tta`` averages CAMs and logits over flips
    and scales (section 3.4.2, :func:`advwsl.models.tta_cams`). Image scores are the criterion's
    ``scores(logits, cams)`` (softmax of the logits by default). A segmentation model gets ``loss``,
    ``n_images`` and the Dice / IoU metrics of its predicted foreground.
    """
    criterion = as_criterion(criterion) if criterion is not None else ImageLabelLoss()
    base = unwrap(model)
    device = model_device(base)
    modes = [(m, m.training) for m in base.modules()]
    base.eval()
    meters = _Evaluator(base, criterion, desc, cam_rule=cam_rule, cam_class=cam_class, region_classes=region_classes)
    bar = _progress(progress, desc, len(loader) if hasattr(loader, "__len__") else None)
    try:
        for batch in loader:
            if bar is not None:
                bar.update(1)
            images, labels, masks, _ = _unpack(batch)
            x = _to_device(images, device, channels_last)
            want_cams = hasattr(base, "cams") and (masks is not None or criterion.needs_cams)
            with _autocast(device, amp):
                if want_cams:
                    logits, cams = tta_cams(base, x) if tta else base.cams(x)
                else:
                    logits, cams = base(x), None
            logits, cams = logits.float(), (cams.float() if cams is not None else None)
            if logits.dim() == 4:  # a segmentation model: per-pixel logits
                meters.segmentation(logits, labels.to(device), masks)
            else:
                meters.classification(logits, cams, labels, masks, tuple(x.shape[-2:]))
    finally:
        if bar is not None:
            bar.close()
        for m, training in modes:
            m.training = training
    return meters.compute()


class _Evaluator:
    """The meters of :func:`evaluate`, one method per kind of model output: a segmentation model's pixel
    logits, an image classifier's logits (with its CAMs scored against binary masks, eq. 2.3 and 4.14, or
    against multi-label class-index masks, eq. 3.12-3.14)."""

    def __init__(self, base: nn.Module, criterion: nn.Module, desc: str, *, cam_rule: str, cam_class: str | int,
                 region_classes: Sequence[int] | None) -> None:
        self.base, self.criterion, self.desc = base, criterion, desc
        self.device = model_device(base)
        self.cam_rule, self.cam_class = cam_rule, cam_class
        self.regions = (tuple(int(k) for k in region_classes)
                        if region_classes is not None and len(region_classes) >= 2 else ())
        self.cls_meter: ClassificationMeter | None = None
        self.seg_meter = BinarySegmentationMeter()
        self.pixel_meter: ConfusionMeter | None = None
        self.used = torch.zeros(2, dtype=torch.float64)  # binary masks scored, pixel classes scored
        self.loss_sum = torch.zeros(2, dtype=torch.float64)

    def _add_loss(self, loss: Tensor, n: int) -> None:
        self.loss_sum += torch.tensor([loss.item() * n, n], dtype=torch.float64)

    def segmentation(self, logits: Tensor, y: Tensor, masks: Tensor | None) -> None:
        """Per-pixel logits (N, 2, H, W): the loss and the Dice / IoU of the predicted foreground."""
        if masks is None:
            raise InputError(f"{self.desc}: a segmentation model is evaluated against masks; the batches have none")
        if self.criterion.needs_masks:
            loss, _ = self.criterion(logits, y, masks=masks.to(self.device))
        else:
            loss = F.cross_entropy(logits, pixel_targets(masks).to(self.device))
        self._add_loss(loss, logits.shape[0])
        self.seg_meter.update((logits.argmax(1) > 0).cpu(), masks > 0.5)
        self.used[0] = 1

    def classification(self, logits: Tensor, cams: Tensor | None, labels: Tensor, masks: Tensor | None,
                       size: tuple[int, int]) -> None:
        """Image logits (N, C): scores, the loss, and the CAM localization when there are masks and CAMs."""
        y = labels.to(self.device)
        scores = self.criterion.scores(logits, cams)
        if self.cls_meter is None:
            self.cls_meter = ClassificationMeter(scores.shape[1], multilabel=y.dim() == 2)
        self.cls_meter.update(scores, y)
        if self.criterion.needs_sizes and masks is not None:
            sizes = size_targets(masks, labels, self.base.num_classes).to(self.device)
            loss, _ = self.criterion(logits, y, cams=cams, sizes=sizes, input_size=size)
        elif y.dim() == 1:
            loss = F.cross_entropy(logits, y.long())
        else:
            loss = F.binary_cross_entropy_with_logits(logits, y.float())
        self._add_loss(loss, logits.shape[0])
        if masks is None or cams is None:
            return
        if y.dim() == 1:
            self._localization(cams, scores, y, masks, size)
        else:  # multi-label: masks of class indices, 0 background, k + 1 class k, 255 void
            self.pixel_meter = self.pixel_meter or ConfusionMeter(self.base.num_classes + 1, ignore_index=VOID_INDEX)
            self.pixel_meter.update(pixel_predictions(upsample_cams(cams, size)).cpu(), masks.long().cpu())
            self.used[1] = 1

    def _localization(self, cams: Tensor, scores: Tensor, y: Tensor, masks: Tensor, size: tuple[int, int]) -> None:
        """The binarized CAM of ``cam_class`` against the binary masks; eq. 4.14 over the region classes."""
        if self.cam_class == "true":
            classes = y
        elif self.cam_class == "predicted":
            classes = scores.argmax(1)
        else:
            classes = torch.full_like(y, int(self.cam_class))
        pred = cam_masks(cams, classes, size, self.cam_rule)
        self.seg_meter.update(pred.cpu(), masks > 0.5)
        self.used[0] = 1
        if self.regions:  # eq. 4.14: the pixel classes of the region-carrying image classes together
            self.pixel_meter = self.pixel_meter or ConfusionMeter(
                self.base.num_classes + 1, foreground=tuple(k + 1 for k in self.regions))
            truth = (y.long().view(-1, 1, 1) + 1) * (masks.to(self.device) > 0.5).long()
            self.pixel_meter.update(pixel_predictions(upsample_cams(cams, size)).cpu(), truth.cpu())
            self.used[1] = 1

    def compute(self) -> dict[str, float]:
        """The metrics over every rank (see :func:`evaluate`)."""
        s, n = all_reduce_sum(self.loss_sum).tolist()
        if n == 0:
            raise InputError(f"{self.desc}: the loader yielded no batch; check the dataset split is not empty")
        out = self.cls_meter.compute() if self.cls_meter is not None else {}
        out["loss"] = s / max(n, 1.0)
        seg_used, pixels_used = all_reduce_sum(self.used).tolist()
        if seg_used:
            out.update(self.seg_meter.compute())
        if pixels_used and self.pixel_meter is not None:
            pixels = self.pixel_meter.compute()
            if self.regions:
                out["dice_combined"] = pixels["dice_combined"]
            else:
                out.update({k: v for k, v in pixels.items() if k == "miou" or k.startswith("iou_")})
                out["pixel_accuracy"] = pixels["pixel_accuracy"]
        return {k: float(v) for k, v in out.items()}
