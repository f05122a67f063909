"""Running an attack over a dataset and reporting what it verifiably did (Tables A V-1 to A V-4).

:func:`run_attack` is the one runner of advwsl, for every registered attack and both goals: it checks the
inputs and the model, attacks batch by batch (untargeted, or towards every other class, the least likely
class or given targets), counts the forward and backward passes the attack makes through a wrapper around
the model, times it (CUDA-synchronized), and then verifies everything it reports: the adversarials are
finite, within the bounds, on the quantization lattice when the attack quantizes (samples returned
unchanged excepted, so data that is not 8-bit is not blamed on the attack), re-predicted by the model, and
their norms recomputed. Success is the goal of the attack's spec, re-evaluated: a changed label (the
target reached, when targeted), or for CAM-goal attacks a moved CAM with the label kept. A violation
raises :class:`~advwsl.errors.VerificationError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AdvwslWarning, InputError, VerificationError
from ..models.cams import require_cams
from ..utils import Timer, model_device
from ._checks import attack_mode, check_inputs, check_labels, check_model
from .precision import precision_context, repair, wrap
from .registry import AttackSpec, get_attack_spec
from .result import COLUMNS, AttackResult

__all__ = ["run_attack", "CountingModel", "counting", "iter_batches", "on_lattice", "VerificationError"]


class CountingModel(nn.Module):
    """Wraps a model and counts its forward calls and the backward passes through its output (one hook per
    forward, on the output every objective goes through)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forwards = 0
        self.backwards = 0
        self.training = False  # the wrapper only; .eval() would also switch the wrapped model

    def reset(self) -> None:
        self.forwards = self.backwards = 0

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.backwards += 1

    def _counted(self, out: Any) -> Any:
        self.forwards += 1
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def forward(self, x: torch.Tensor) -> Any:
        return self._counted(self.model(x))


class CountingCamModel(CountingModel):
    """:class:`CountingModel` for weakly supervised models: ``cams(x)`` passes are counted too (the hook
    is on the CAMs, which every objective of the CAM attack goes through)."""

    def cams(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cams = self.model.cams(x)
        return logits, self._counted(cams)


def counting(model: nn.Module) -> CountingModel:
    """The counting wrapper of ``model``, with ``cams`` exactly when the model has CAMs."""
    return CountingCamModel(model) if callable(getattr(model, "cams", None)) else CountingModel(model)


def iter_batches(data: torch.Tensor | Iterable[Any], labels: torch.Tensor | None,
             batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches from a tensor with labels, or from a DataLoader yielding pairs or the
    sample dicts of :mod:`advwsl.data` (``image``, ``label``)."""
    if isinstance(data, torch.Tensor):
        if labels is None:
            raise InputError("labels are required when data is a tensor; pass labels=... (one class per image)")
        check_labels(labels, len(data))
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size], labels[start:start + batch_size]
        return
    if labels is not None:
        raise InputError("labels must be None when data is a DataLoader (it yields the labels with the images)")
    if not isinstance(data, Iterable):
        raise InputError(f"data must be a tensor of images or a DataLoader, got {type(data).__name__}")
    for item in data:
        if isinstance(item, dict) and "image" in item and "label" in item:
            yield item["image"], item["label"]
        elif isinstance(item, (tuple, list)) and len(item) >= 2:
            yield item[0], item[1]
        else:
            kind = f"a dict with keys {sorted(item)}" if isinstance(item, dict) else type(item).__name__
            raise InputError(f"the DataLoader must yield (images, labels) pairs or dicts with 'image' and 'label', "
                             f"got {kind}")


def on_lattice(x: torch.Tensor, levels: int, bounds: tuple[float, float] = (0.0, 1.0),
               tol: float = 1e-3) -> torch.Tensor:
    """Per sample, whether every value of ``x`` lies on the ``levels``-value lattice of ``bounds`` (within
    ``tol`` of a level)."""
    lo, hi = bounds
    grid = (x.double() - lo) / (hi - lo) * (levels - 1)
    return (grid - grid.round()).abs().flatten(1).amax(1) <= tol


def _verify(adv: Any, x: torch.Tensor, bounds: tuple[float, float], levels: int | None, name: str) -> None:
    if not isinstance(adv, torch.Tensor) or adv.shape != x.shape:
        shape = tuple(adv.shape) if isinstance(adv, torch.Tensor) else type(adv).__name__
        raise VerificationError(f"attack {name} returned {shape} for inputs of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(adv).all()):
        raise VerificationError(f"attack {name} returned NaN or infinite values")
    lo, hi = bounds
    tol = 1e-5 * (hi - lo)
    mn, mx = float(adv.min()), float(adv.max())
    if mn < lo - tol or mx > hi + tol:
        raise VerificationError(f"attack {name} returned values in [{mn:.6g}, {mx:.6g}], outside bounds {bounds}")
    if levels is not None:
        changed = (adv != x).flatten(1).any(1)
        off = changed & ~on_lattice(adv, levels, bounds)
        if bool(off.any()):
            raise VerificationError(f"attack {name} changed sample(s) {torch.nonzero(off).flatten()[:5].tolist()} "
                                    f"of the batch to values off the {levels}-level lattice it was asked to quantize "
                                    "to")


def _resolve(attack: str | AttackSpec | Callable[..., torch.Tensor], name: str | None) -> AttackSpec:
    if isinstance(attack, AttackSpec):
        return attack
    if isinstance(attack, str):
        return get_attack_spec(attack)
    if callable(attack):
        label = getattr(attack, "__name__", "attack")
        return AttackSpec(label, attack, name or label, "a user-supplied attack function", reference_budget="",
                          quick_budget="")
    raise InputError(f"attack must be a registered name, an AttackSpec or a function, got {type(attack).__name__}")


def run_attack(model: nn.Module, data: torch.Tensor | Iterable[Any], labels: torch.Tensor | None = None, *,
               attack: str | AttackSpec | Callable[..., torch.Tensor] = "ddn",
               attack_kwargs: dict[str, Any] | None = None, targeted: bool = False,
               target: str | torch.Tensor = "all", batch_size: int = 128, levels: int | None = 256,
               bounds: tuple[float, float] = (0.0, 1.0), progress: bool = True, seed: int | None = 0,
               name: str | None = None, keep_adversarials: bool = False, precision: str = "fp32",
               channels_last: bool = False) -> AttackResult:
    """Attack every sample of ``data`` and return the verified per-sample records (Table A V-1).

    Parameters
    ----------
    model : nn.Module
        Returns logits. Attacked in eval mode (a warning if it was in train mode) and restored afterwards.
    data : Tensor or iterable
        Images within ``bounds``: a tensor with ``labels``, or a DataLoader yielding ``(images, labels)``
        pairs or the sample dicts of :mod:`advwsl.data`. Batches are moved to the model's device.
    labels : Tensor, optional
        True labels when ``data`` is a tensor.
    attack : str, AttackSpec or callable
        A registered attack name (see :func:`advwsl.attacks.list_attacks`), its spec, or a function with the
        attack signature (then success is a changed label).
    attack_kwargs : dict, optional
        Hyper-parameters passed to the attack (e.g. ``{"steps": 100}``; see ``AttackSpec.kwargs(budget)``).
    targeted : bool
        Targeted attacks (Tables A V-2 to A V-4) instead of untargeted ones.
    target : "all", "least_likely" or Tensor
        With ``targeted``: every class other than the label (one record per pair), the class of lowest clean
        logit, or one given target per sample (in data order).
    batch_size : int
        Records attacked together (targeted "all" multiplies the records per image by ``C - 1``).
    levels : int or None
        Quantization lattice passed to attacks that take ``levels`` (and verified on the samples they
        change); None for floats.
    bounds : (float, float)
        Box the images live in.
    progress : bool
        Show a progress bar.
    seed : int or None
        Passed to attacks that take a ``seed``.
    name : str, optional
        Name shown in tables (default: the spec's display name).
    keep_adversarials : bool
        Keep the adversarial images (on CPU) in ``AttackResult.adversarials``.
    precision : {"fp32", "tf32", "bf16"}
        Precision the attack runs in (:mod:`advwsl.attacks.precision`); every result is verified in fp32,
        and a reduced-precision adversarial that is not adversarial in fp32 is repaired or counted as a failure.
    channels_last : bool
        Run the attack with inputs and convolution weights in the channels_last memory format.

    Returns
    -------
    AttackResult
        ``params`` records the attack, its hyper-parameters and ``inputs_on_lattice`` (whether every input
        was on the lattice; when not, the adversarials of unchanged samples are the float inputs).
    """
    from tqdm.auto import tqdm

    spec = _resolve(attack, name)
    display = name or spec.display
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if spec.goal == "cam":
        require_cams(model)
    if targeted and not spec.targeted:
        raise InputError(f"{spec.display} has no targeted form; drop targeted=True (--targeted) or choose one of "
                         "the attacks that have one")
    if isinstance(target, str) and target not in ("all", "least_likely"):
        raise InputError(f"target must be 'all', 'least_likely' or a tensor of target classes, got {target!r}")
    kwargs = dict(attack_kwargs or {})
    used_levels = None
    if spec.accepts("levels"):
        kwargs.setdefault("levels", levels)
        used_levels = kwargs["levels"]
    if spec.accepts("bounds"):
        kwargs.setdefault("bounds", tuple(bounds))
    if spec.accepts("seed") and seed is not None:
        kwargs.setdefault("seed", seed)
    lo, hi = (float(b) for b in bounds)
    budget = spec.budget_label(kwargs)

    counter = counting(wrap(model, precision, channels_last))
    reduced = precision != "fp32" or channels_last
    n_repaired = 0
    records: dict[str, list[np.ndarray]] = {k: [] for k in COLUMNS}
    advs: list[torch.Tensor] = []
    timer = Timer(model_device(model))
    offset, num_classes, all_on_lattice = 0, None, True
    bar = tqdm(desc=f"{display} {budget}", unit="img", disable=not progress)
    with attack_mode(model), precision_context(model, precision, channels_last):
        for images, batch_labels in iter_batches(data, labels, batch_size):
            device = model_device(model, images.device)
            images = images.to(device)
            if not isinstance(batch_labels, torch.Tensor):
                raise InputError(f"labels must be a tensor of class indices, got {type(batch_labels).__name__}")
            batch_labels = batch_labels.to(device)
            check_inputs(images, (lo, hi))
            if num_classes is None:
                num_classes = check_model(model, images)
            check_labels(batch_labels, len(images), num_classes)
            if used_levels is not None:
                all_on_lattice &= bool(on_lattice(images, used_levels, (lo, hi)).all())
            index = torch.arange(offset, offset + len(images), device=device)
            offset += len(images)
            with torch.no_grad():
                clean_logits = model(images)
            clean_pred = clean_logits.argmax(1)
            row = torch.arange(len(images), device=device)
            if not targeted:
                tgt = torch.full_like(batch_labels, -1)
            elif isinstance(target, torch.Tensor):
                tgt = target.to(device)[index]
            elif target == "least_likely":
                tgt = clean_logits.argmin(1)
            else:
                others = torch.arange(num_classes, device=device).expand(len(images), -1)
                keep = others != batch_labels[:, None]
                row = row[:, None].expand(-1, num_classes)[keep]
                tgt = others[keep]
            if targeted:
                check_labels(tgt, len(row), num_classes, name="target")
                same = tgt == batch_labels[row]
                if isinstance(target, torch.Tensor) and bool(same.any()):
                    raise InputError(f"targeted attack: the target equals the true label for sample(s) "
                                     f"{index[row[same]][:5].tolist()}; give targets other than the labels")
            for start in range(0, len(row), batch_size):
                r, t = row[start:start + batch_size], tgt[start:start + batch_size]
                x, y = images[r], batch_labels[r]
                counter.reset()
                with timer:
                    adv = spec.fn(counter, x, t if targeted else y, targeted=targeted, **kwargs)
                adv = adv.detach() if isinstance(adv, torch.Tensor) else adv
                _verify(adv, x, (lo, hi), used_levels, spec.name)
                correct = clean_pred[r] == y

                def reached(candidate: torch.Tensor) -> torch.Tensor:  # the goal, evaluated by the fp32 model
                    if spec.goal == "cam":
                        return spec.success(model, x, candidate, y, kwargs).to(device) & correct
                    with torch.no_grad():
                        pred = model(candidate).argmax(1)
                    return (pred == t if targeted else pred != y) & correct

                if reduced:
                    adv, fixed = repair(x, adv, reached, (lo, hi), used_levels)
                    n_repaired += int(fixed.sum())
                with torch.no_grad():
                    adv_pred = model(adv).argmax(1)
                if spec.goal == "cam":
                    hit = reached(adv)
                else:
                    hit = (adv_pred == t if targeted else adv_pred != y) & correct
                gray = torch.full_like(x, (lo + hi) / 2)
                for key, value in (("index", index[r]), ("label", y), ("target", t), ("clean_pred", clean_pred[r]),
                                   ("adv_pred", adv_pred), ("originally_correct", correct),
                                   ("success", hit), ("l2", (adv - x).flatten(1).norm(dim=1)),
                                   ("gray_l2", (gray - x).flatten(1).norm(dim=1)),
                                   ("n_forward", torch.full_like(y, counter.forwards)),
                                   ("n_backward", torch.full_like(y, counter.backwards))):
                    records[key].append(value.detach().cpu().numpy())
                if keep_adversarials:
                    advs.append(adv.cpu())
                bar.update(len(r))
    bar.close()
    if offset == 0:
        raise InputError("data is empty: there is nothing to attack")
    if used_levels is not None and not all_on_lattice:
        warnings.warn(f"the inputs are not on the {used_levels}-level lattice (not 8-bit values: resized or float "
                      f"data?); the samples {spec.display} changed were verified on the lattice, the unchanged ones "
                      "as floats. Pass levels=None (--levels 0) to attack without quantization.", AdvwslWarning,
                      stacklevel=2)
    params = {"attack": spec.name, "goal": spec.goal, "inputs_on_lattice": all_on_lattice if used_levels else None,
              "precision": precision, "channels_last": channels_last, "repaired": n_repaired,
              **{k: v for k, v in kwargs.items() if k != "generator"}}
    return AttackResult(attack=display, budget=budget, targeted=targeted, seconds=timer.seconds, levels=used_levels,
                        bounds=(lo, hi), params=params, adversarials=torch.cat(advs) if keep_adversarials else None,
                        **{k: np.concatenate(v) for k, v in records.items()})
