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

The caller's tensors are never modified: the model (the attack's counted one and the runner's own
predictions) is only ever given copies, so a model that changes its input in place cannot change them.
Logits must be floats; NaN or infinite clean logits are an error naming the samples, and an adversarial
on which the model's logits are not finite is counted as a failure (with a warning).

The phases: :func:`_check_request` (options), :func:`_runner_kwargs` (what the attack receives: what its spec declares),
:func:`_attack_batch` (check and predict a batch, :func:`_targets` of its records) and
:func:`_attack_records` (attack, verify, record into :class:`_Records`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AdvwslWarning, InputError, ModelError, VerificationError
from ..models.cams import require_cams
from ..utils import Timer, model_device
from ._checks import attack_mode, check_inputs, check_labels, check_logits, check_model
from .precision import precision_context, repair, wrap
from .chunks import ChunkStore, function_sha256, module_sha256
from .counting import BAR, CountingModel, Ticks, counting, expected_forwards, total_records
from .registry import AttackSpec, get_attack_spec
from .result import COLUMNS, AttackResult

__all__ = ["run_attack", "CountingModel", "counting", "iter_batches", "on_lattice", "VerificationError"]


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
               channels_last: bool = False, checkpoint: str | Path | None = None) -> AttackResult:
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
    checkpoint : path, optional
        A folder where every finished chunk of ``batch_size`` records is saved (:mod:`advwsl.attacks.chunks`);
        a run given the same folder again reads the chunks it holds back instead of attacking them (same
        attack, options, model weights and data: the records are those of an uninterrupted run). One folder
        may serve many runs: each chunk is keyed by everything its records depend on.

    Returns
    -------
    AttackResult
        ``params`` records the attack, its hyper-parameters and ``inputs_on_lattice`` (whether every input
        was on the lattice; when not, the adversarials of unchanged samples are the float inputs).
    """
    from tqdm.auto import tqdm

    spec = _resolve(attack, name)
    display = name or spec.display
    _check_request(spec, model, data, targeted=targeted, target=target, batch_size=batch_size)
    kwargs, used_levels = _runner_kwargs(spec, attack_kwargs, levels=levels, bounds=bounds, seed=seed)
    run = _Run(spec, model, counting(wrap(model, precision, channels_last)), kwargs, tuple(float(b) for b in bounds),
               used_levels, targeted, precision != "fp32" or channels_last, Timer(model_device(model)))
    if checkpoint is not None:
        if "generator" in kwargs:
            raise InputError("a checkpoint keeps chunks that must not depend on each other, and a generator in "
                             "attack_kwargs carries its random stream from chunk to chunk: pass the attack's seed "
                             "instead (run_attack's seed) or drop checkpoint")
        run.store = ChunkStore(checkpoint)
        fn = spec.fn
        run.run_key = ChunkStore.run_key(
            attack=spec.name, fn=f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', fn)}",
            code=function_sha256(fn), kwargs=kwargs, targeted=targeted, levels=used_levels, bounds=run.bounds,
            precision=precision, channels_last=channels_last, keep=keep_adversarials, model=module_sha256(model),
            device=model_device(model).type)
    records = _Records(keep_adversarials)
    bar = tqdm(desc=f"{display} {spec.budget_label(kwargs)}", unit="img", disable=not progress,
               total=total_records(data, targeted, target), bar_format=BAR)
    with attack_mode(model), precision_context(model, precision, channels_last):
        for images, batch_labels in iter_batches(data, labels, batch_size):
            _attack_batch(run, records, images, batch_labels, target, batch_size, bar)
    bar.close()
    if records.offset == 0:
        raise InputError("data is empty: there is nothing to attack")
    _warn_after(run, records, display)
    params = {"attack": spec.name, "goal": spec.goal,
              "inputs_on_lattice": records.all_on_lattice if used_levels else None, "precision": precision,
              "channels_last": channels_last, "repaired": records.n_repaired,
              **{k: v for k, v in kwargs.items() if k != "generator"}}
    return records.result(attack=display, budget=spec.budget_label(kwargs), targeted=targeted,
                          seconds=run.timer.seconds, levels=used_levels, bounds=run.bounds, params=params)


def _runner_kwargs(spec: AttackSpec, attack_kwargs: dict[str, Any] | None, *, levels: int | None,
                   bounds: tuple[float, float], seed: int | None) -> tuple[dict[str, Any], int | None]:
    """The attack's keyword arguments: ``attack_kwargs`` over the runner's values of the parameters the spec
    declares (:meth:`AttackSpec.runner_kwargs`: ``levels``, ``bounds``, ``seed``); and the quantization levels
    the attack uses (None when it does not quantize)."""
    kwargs = {**spec.runner_kwargs(levels=levels, bounds=bounds, seed=seed), **(attack_kwargs or {})}
    return kwargs, kwargs.get("levels") if "levels" in spec.runner_params else None


def _check_request(spec: AttackSpec, model: nn.Module, data: Any, *, targeted: bool, target: str | torch.Tensor,
                   batch_size: int) -> None:
    """The checks of :func:`run_attack`'s options, before any work."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    if spec.goal == "cam":
        require_cams(model)
    if targeted and not spec.targeted:
        raise InputError(f"{spec.display} has no targeted form; drop targeted=True (--targeted) or choose one of "
                         "the attacks that have one")
    if isinstance(target, str):
        if target not in ("all", "least_likely"):
            raise InputError(f"target must be 'all', 'least_likely' or a tensor of target classes, got {target!r}")
        return
    if not targeted:  # (target is read by targeted runs only)
        return
    if not isinstance(target, torch.Tensor) or target.dim() != 1:
        shape = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
        raise InputError(f"target must be 'all', 'least_likely' or a 1-D tensor of target classes (one per sample), "
                         f"got {shape}")
    if isinstance(data, torch.Tensor) and len(target) != len(data):
        raise InputError(f"target has {len(target)} entries but the data has {len(data)} samples; give one target "
                         "class per sample, in data order")


@dataclass
class _Run:
    """What every batch of a :func:`run_attack` call uses."""

    spec: AttackSpec
    model: nn.Module  # the caller's model: clean predictions and verification, in fp32
    counter: CountingModel  # what the attack runs on (counted, in the requested precision)
    kwargs: dict[str, Any]
    bounds: tuple[float, float]
    levels: int | None
    targeted: bool
    reduced: bool  # reduced precision or channels_last: adversarials are repaired in fp32
    timer: Timer
    num_classes: int | None = None
    store: ChunkStore | None = None  # where finished chunks are saved and read back (``checkpoint``)
    run_key: str = ""


@dataclass
class _Records:
    """The per-sample records of a :func:`run_attack` call as they accumulate, batch by batch."""

    keep_adversarials: bool
    columns: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in COLUMNS})
    adversarials: list[torch.Tensor] = field(default_factory=list)
    offset: int = 0  # samples seen so far: the index of the next one
    all_on_lattice: bool = True
    n_repaired: int = 0
    n_non_finite: int = 0  # adversarials on which the model's logits are NaN or infinite

    def add(self, adversarials: torch.Tensor, **values: torch.Tensor) -> None:
        for key in COLUMNS:
            self.columns[key].append(values[key].detach().cpu().numpy())
        if self.keep_adversarials:
            self.adversarials.append(adversarials.cpu())

    def last(self) -> dict[str, np.ndarray]:
        """The columns (and adversarials, when kept) of the chunk added last, as arrays."""
        out = {key: self.columns[key][-1] for key in COLUMNS}
        if self.keep_adversarials:
            out["adversarials"] = self.adversarials[-1].numpy()
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Add a chunk read back from a :class:`ChunkStore` (saved by :func:`_attack_batch`)."""
        for key in COLUMNS:
            self.columns[key].append(arrays[key])
        if self.keep_adversarials:
            self.adversarials.append(torch.from_numpy(arrays["adversarials"]))
        self.n_repaired += int(arrays["repaired"])
        self.n_non_finite += int(arrays["non_finite"])

    def result(self, **fields: Any) -> AttackResult:
        adversarials = torch.cat(self.adversarials) if self.keep_adversarials else None
        return AttackResult(**fields, adversarials=adversarials,
                            **{k: np.concatenate(v) for k, v in self.columns.items()})


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The logits of the fp32 ``model`` on a copy of ``x`` (a model may change its input in place)."""
    with torch.no_grad():
        return model(x.clone())


def _clean_logits(run: _Run, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The model's logits on a batch, checked: float, finite (NaN or infinite logits name the samples)."""
    logits = _predict(run.model, images)
    if isinstance(logits, torch.Tensor) and logits.is_floating_point() and logits.dim() == 2 \
            and len(logits) == len(images):
        bad = ~torch.isfinite(logits).all(1)
        if bool(bad.any()):
            raise ModelError(f"the model returned NaN or infinite logits on sample(s) {index[bad][:5].tolist()}; "
                             "check its weights (a diverged training?) and that the inputs are what it expects")
    check_logits(logits)
    return logits


def _targets(run: _Run, target: str | torch.Tensor, clean_logits: torch.Tensor, labels: torch.Tensor,
             index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The records of a batch: ``(row, target)`` with ``row`` the sample of each record and ``target`` its
    target class (-1 when untargeted); targeted ``"all"`` makes one record per other class."""
    device, n = labels.device, len(labels)
    row = torch.arange(n, device=device)
    if not run.targeted:
        return row, torch.full_like(labels, -1)
    if isinstance(target, torch.Tensor):
        if int(index[-1]) >= len(target):
            raise InputError(f"target has {len(target)} entries but the data has more samples (at least "
                             f"{int(index[-1]) + 1}); give one target class per sample, in data order")
        tgt = target.to(device)[index]
    elif target == "least_likely":
        tgt = clean_logits.argmin(1)
    else:
        others = torch.arange(run.num_classes, device=device).expand(n, -1)
        keep = others != labels[:, None]
        row, tgt = row[:, None].expand(-1, run.num_classes)[keep], others[keep]
    check_labels(tgt, len(row), run.num_classes, name="target")
    same = tgt == labels[row]
    if isinstance(target, torch.Tensor) and bool(same.any()):
        raise InputError(f"targeted attack: the target equals the true label for sample(s) "
                         f"{index[row[same]][:5].tolist()}; give targets other than the labels")
    return row, tgt


def _attack_batch(run: _Run, records: _Records, images: torch.Tensor, labels: Any, target: str | torch.Tensor,
                  batch_size: int, bar: Any) -> None:
    """Check one batch of data, predict it and attack its records ``batch_size`` at a time. ``images`` is
    never modified: the model and the attack only see copies."""
    device = model_device(run.model, images.device)
    images = images.to(device)
    if not isinstance(labels, torch.Tensor):
        raise InputError(f"labels must be a tensor of class indices, got {type(labels).__name__}")
    labels = labels.to(device)
    check_inputs(images, run.bounds)
    if run.num_classes is None:
        run.num_classes = check_model(run.model, images)
    check_labels(labels, len(images), run.num_classes)
    if run.levels is not None:
        records.all_on_lattice &= bool(on_lattice(images, run.levels, run.bounds).all())
    index = torch.arange(records.offset, records.offset + len(images), device=device)
    records.offset += len(images)
    clean_logits = _clean_logits(run, images, index)
    row, tgt = _targets(run, target, clean_logits, labels, index)
    clean_pred = clean_logits.argmax(1)
    for start in range(0, len(row), batch_size):
        r, t = row[start:start + batch_size], tgt[start:start + batch_size]
        key = ChunkStore.chunk_key(run.run_key, images[r], labels[r], t, index[r]) if run.store is not None else None
        if key is not None and _restored(run, records, key):
            bar.update(len(r))
            continue
        ticks = Ticks(bar, len(r), expected_forwards(run.kwargs))
        run.counter.on_forward = ticks
        before = (run.timer.seconds, records.n_repaired, records.n_non_finite)
        try:
            _attack_records(run, records, images[r], labels[r], t, index[r], clean_pred[r])
        finally:
            run.counter.on_forward = None
        ticks.finish()
        if key is not None:
            run.store.save(key, {**records.last(), "seconds": np.array(run.timer.seconds - before[0]),
                                 "repaired": np.array(records.n_repaired - before[1]),
                                 "non_finite": np.array(records.n_non_finite - before[2])})


def _restored(run: _Run, records: _Records, key: str) -> bool:
    """Add the chunk saved under ``key`` to ``records`` (and its seconds to the run's); False when the store
    does not hold it (or holds it without the adversarials this run keeps)."""
    arrays = run.store.load(key)
    if arrays is None or not set(COLUMNS) <= set(arrays) or (records.keep_adversarials and "adversarials" not in arrays):
        return False
    records.restore(arrays)
    run.timer.seconds += float(arrays["seconds"])
    return True


def _goal(run: _Run, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, correct: torch.Tensor,
          candidate: torch.Tensor) -> torch.Tensor:
    """Whether ``candidate`` reaches the attack's goal for the clean ``x``, evaluated by the fp32 model (an
    input on which the model's logits are not finite reaches nothing)."""
    if run.spec.goal == "cam":
        return run.spec.success(run.model, x.clone(), candidate.clone(), y, run.kwargs).to(y.device) & correct
    logits = _predict(run.model, candidate)
    pred = logits.argmax(1)
    return (pred == t if run.targeted else pred != y) & correct & torch.isfinite(logits).all(1)


def _attack_records(run: _Run, records: _Records, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                    index: torch.Tensor, clean_pred: torch.Tensor) -> None:
    """Attack one chunk of records (copies of their images ``x``), verify the adversarials and record them."""
    run.counter.reset()
    with run.timer:
        adv = run.spec.fn(run.counter, x, t if run.targeted else y, targeted=run.targeted, **run.kwargs)
    adv = adv.detach() if isinstance(adv, torch.Tensor) else adv
    _verify(adv, x, run.bounds, run.levels, run.spec.name)
    correct = clean_pred == y
    reached = partial(_goal, run, x, y, t, correct)
    if run.reduced:
        adv, fixed = repair(x, adv, reached, run.bounds, run.levels)
        records.n_repaired += int(fixed.sum())
    adv_logits = _predict(run.model, adv)
    finite = torch.isfinite(adv_logits).all(1)
    records.n_non_finite += int((~finite).sum())
    adv_pred = adv_logits.argmax(1)
    if run.spec.goal == "cam":
        hit = reached(adv)
    else:
        hit = (adv_pred == t if run.targeted else adv_pred != y) & correct & finite
    lo, hi = run.bounds
    gray = torch.full_like(x, (lo + hi) / 2)
    records.add(adv, index=index, label=y, target=t, clean_pred=clean_pred, adv_pred=adv_pred,
                originally_correct=correct, success=hit, l2=(adv - x).flatten(1).norm(dim=1),
                gray_l2=(gray - x).flatten(1).norm(dim=1), n_forward=torch.full_like(y, run.counter.forwards),
                n_backward=torch.full_like(y, run.counter.backwards))


def _warn_after(run: _Run, records: _Records, display: str) -> None:
    """The warnings of a finished run (reported at the caller of :func:`run_attack`)."""
    if run.levels is not None and not records.all_on_lattice:
        warnings.warn(f"the inputs are not on the {run.levels}-level lattice (not 8-bit values: resized or float "
                      f"data?); the samples {run.spec.display} changed were verified on the lattice, the unchanged "
                      "ones as floats. Pass levels=None (--levels 0) to attack without quantization.", AdvwslWarning,
                      stacklevel=3)
    if records.n_non_finite:
        warnings.warn(f"the model returned NaN or infinite logits on {records.n_non_finite} adversarial(s) of "
                      f"{display}: they are counted as failures (their prediction is undefined); check the model on "
                      "inputs near these images", AdvwslWarning, stacklevel=3)
