"""Running an attack over a dataset and reporting what it verifiably did (Tables A V-1 to A V-4).

:func:`run_attack` checks the inputs and the model, attacks batch by batch (untargeted, or towards every
other class, the least likely class or given targets), counts the forward and backward passes the attack
makes through a wrapper around the model, and then verifies everything it reports: the adversarials are
finite, within the bounds, on the quantization lattice when the attack quantizes, re-predicted by the
model, and their norms recomputed. A violation raises :class:`VerificationError`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AdvwslError, InputError
from ..evaluation.checks import attack_mode, check_inputs, check_labels, check_model
from ..results import AttackResult
from . import get_attack

#: Display names of the registered attacks in tables (the reference's spelling).
DISPLAY_NAMES = {"ddn": "DDN", "cw": "C&W", "carlini_wagner_l2": "C&W", "deepfool": "DeepFool", "pgd": "PGD"}


class VerificationError(AdvwslError):
    """An attack returned something it must not: out of bounds, off the lattice, NaN, wrong shape."""


class CountingModel(nn.Module):
    """Wraps a model and counts its forward calls and the backward passes through its output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forwards = 0
        self.backwards = 0

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.backwards += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        self.forwards += 1
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(self._count_backward)
        return out


def _budget(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """The budget column of Table A V-1: ``steps``, or ``search steps x steps`` for C&W."""
    params = inspect.signature(fn).parameters

    def value(name: str) -> Any:
        return kwargs.get(name, params[name].default if name in params else None)

    steps = value("steps")
    searches = value("binary_search_steps")
    if searches is not None and steps is not None:
        return f"{searches}x{steps}"
    return "-" if steps is None else str(steps)


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def _batches(data: torch.Tensor | Iterable[Any], labels: torch.Tensor | None,
             batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, torch.Tensor):
        if labels is None:
            raise InputError("labels are required when data is a tensor; pass labels=... (one class per image)")
        check_labels(labels, len(data))
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size], labels[start:start + batch_size]
        return
    if labels is not None:
        raise InputError("labels must be None when data is a DataLoader (it yields (images, labels) pairs)")
    for item in data:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise InputError(f"the DataLoader must yield (images, labels) pairs, got {type(item).__name__}")
        yield item[0], item[1]


def _verify(adv: torch.Tensor, x: torch.Tensor, bounds: tuple[float, float], levels: int | None, name: str) -> None:
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
        grid = (adv.double() - lo) / (hi - lo) * (levels - 1)
        off = float((grid - grid.round()).abs().max())
        if off > 1e-3:
            raise VerificationError(f"attack {name} returned values off the {levels}-level lattice (by up to "
                                    f"{off:.3g} of a level)")


def run_attack(model: nn.Module, data: torch.Tensor | Iterable[Any], labels: torch.Tensor | None = None, *,
               attack: str | Callable[..., torch.Tensor] = "ddn", attack_kwargs: dict[str, Any] | None = None,
               targeted: bool = False, target: str | torch.Tensor = "all", batch_size: int = 128,
               levels: int | None = 256, bounds: tuple[float, float] = (0.0, 1.0), progress: bool = True,
               seed: int | None = 0, name: str | None = None, keep_adversarials: bool = False) -> AttackResult:
    """Attack every sample of ``data`` and return the verified per-sample records (Table A V-1).

    Parameters
    ----------
    model : nn.Module
        Returns logits. Attacked in eval mode (a warning if it was in train mode) and restored afterwards.
    data : Tensor or iterable of (images, labels)
        Images within ``bounds`` (a tensor with ``labels``, or a DataLoader yielding pairs). Batches are
        moved to the model's device.
    labels : Tensor, optional
        True labels when ``data`` is a tensor.
    attack : str or callable
        A registered attack name (see ``advwsl.attacks.ATTACKS``) or a function with the attack signature.
    attack_kwargs : dict, optional
        Hyper-parameters passed to the attack (e.g. ``{"steps": 100}``).
    targeted : bool
        Targeted attacks (Tables A V-2 to A V-4) instead of untargeted ones.
    target : "all", "least_likely" or Tensor
        With ``targeted``: every class other than the label (one record per pair), the class of lowest clean
        logit, or one given target per sample (in data order).
    batch_size : int
        Records attacked together (targeted "all" multiplies the records per image by ``C - 1``).
    levels : int or None
        Quantization lattice passed to attacks that take ``levels`` (and verified); None for floats.
    bounds : (float, float)
        Box the images live in.
    progress : bool
        Show a progress bar.
    seed : int or None
        Passed to attacks that take a ``seed``.
    name : str, optional
        Name shown in tables (default: the reference's name of the attack).
    keep_adversarials : bool
        Keep the adversarial images (on CPU) in ``AttackResult.adversarials``.

    Returns
    -------
    AttackResult
    """
    from tqdm.auto import tqdm

    fn = get_attack(attack) if isinstance(attack, str) else attack
    from .cam import cam_ddn

    if fn is cam_ddn:  # its success is "CAM moved, label kept": run_attack would score it as failures
        raise InputError("cam-ddn keeps the label, so run_attack's success (a changed label) does not apply; use "
                         "advwsl.attacks.cam.run_cam_attack, which verifies and reports the CAM goal")
    if not callable(fn):
        raise InputError(f"attack must be a registered name or a function, got {type(attack).__name__}")
    attack_name = attack if isinstance(attack, str) else getattr(fn, "__name__", "attack")
    display = name or DISPLAY_NAMES.get(attack_name, attack_name)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(target, str) and target not in ("all", "least_likely"):
        raise InputError(f"target must be 'all', 'least_likely' or a tensor of target classes, got {target!r}")
    kwargs = dict(attack_kwargs or {})
    params = inspect.signature(fn).parameters
    used_levels = None
    if "levels" in params:
        kwargs.setdefault("levels", levels)
        used_levels = kwargs["levels"]
    if "bounds" in params:
        kwargs.setdefault("bounds", tuple(bounds))
    if "seed" in params and seed is not None:
        kwargs.setdefault("seed", seed)
    lo, hi = (float(b) for b in bounds)

    counter = CountingModel(model)
    counter.training = False  # the wrapper only; .eval() would also switch the wrapped model
    records: dict[str, list[np.ndarray]] = {k: [] for k in ("index", "label", "target", "clean_pred", "adv_pred",
                                                             "originally_correct", "success", "l2", "gray_l2",
                                                             "n_forward", "n_backward")}
    advs: list[torch.Tensor] = []
    seconds, offset, num_classes = 0.0, 0, None
    bar = tqdm(desc=f"{display} {_budget(fn, kwargs)}", unit="img", disable=not progress)
    with attack_mode(model):
        for images, batch_labels in _batches(data, labels, batch_size):
            device = _model_device(model, images.device)
            images, batch_labels = images.to(device), batch_labels.to(device)
            check_inputs(images, (lo, hi))
            if num_classes is None:
                num_classes = check_model(model, images)
            check_labels(batch_labels, len(images), num_classes)
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
                attack_labels = t if targeted else y
                counter.forwards = counter.backwards = 0
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                tic = time.perf_counter()
                adv = fn(counter, x, attack_labels, targeted=targeted, **kwargs)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds += time.perf_counter() - tic
                adv = adv.detach()
                _verify(adv, x, (lo, hi), used_levels, attack_name)
                with torch.no_grad():
                    adv_pred = model(adv).argmax(1)
                correct = clean_pred[r] == y
                hit = adv_pred == t if targeted else adv_pred != y
                gray = torch.full_like(x, (lo + hi) / 2)
                for key, value in (("index", index[r]), ("label", y), ("target", t), ("clean_pred", clean_pred[r]),
                                   ("adv_pred", adv_pred), ("originally_correct", correct),
                                   ("success", hit & correct), ("l2", (adv - x).flatten(1).norm(dim=1)),
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
    return AttackResult(attack=display, budget=_budget(fn, kwargs), targeted=targeted,
                        seconds=seconds, levels=used_levels, bounds=(lo, hi),
                        params={"attack": attack_name, **{k: v for k, v in kwargs.items() if k != "generator"}},
                        adversarials=torch.cat(advs) if keep_adversarials else None,
                        **{k: np.concatenate(v) for k, v in records.items()})
