"""One :func:`advwsl.attacks.run_attack` call, batch by batch: what every batch uses (:class:`Run`), the
records as they accumulate (:class:`Records`), and for each batch the checks and clean predictions, its
targets, the attack itself (on the counted model, in the requested precision), the verification of what it
returned (:func:`verify`: shape, finite, within the bounds, on the lattice it was asked to quantize to) and
the re-evaluated records; finished chunks are saved to and read back from the run's
:class:`~advwsl.attacks.chunks.ChunkStore`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AdvwslWarning, InputError, ModelError, VerificationError
from ..logs import LOGGER
from ..utils import Timer, model_device
from ._checks import check_inputs, check_labels, check_logits, check_model
from .chunks import ChunkStore
from .counting import CountingModel, Ticks, expected_forwards
from .precision import repair
from .registry import AttackSpec
from .result import COLUMNS, AttackResult

def on_lattice(x: torch.Tensor, levels: int, bounds: tuple[float, float] = (0.0, 1.0),
               tol: float = 1e-3) -> torch.Tensor:
    """Per sample, whether every value of ``x`` lies on the ``levels``-value lattice of ``bounds`` (within
    ``tol`` of a level)."""
    lo, hi = bounds
    grid = (x.double() - lo) / (hi - lo) * (levels - 1)
    return (grid - grid.round()).abs().flatten(1).amax(1) <= tol


def verify(adv: Any, x: torch.Tensor, bounds: tuple[float, float], levels: int | None, name: str) -> None:
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


@dataclass
class Run:
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
    label: str = ""  # the attack and its budget, as the heartbeat names them
    total: int | None = None  # records the run will attack, when known


@dataclass
class Records:
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

    @property
    def done(self) -> int:
        """Records attacked or read back so far."""
        return sum(len(c) for c in self.columns["index"])

    def last(self) -> dict[str, np.ndarray]:
        """The columns (and adversarials, when kept) of the chunk added last, as arrays."""
        out = {key: self.columns[key][-1] for key in COLUMNS}
        if self.keep_adversarials:
            out["adversarials"] = self.adversarials[-1].numpy()
        return out

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Add a chunk read back from a :class:`ChunkStore` (saved by :func:`attack_batch`)."""
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


def _clean_logits(run: Run, images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
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


def _targets(run: Run, target: str | torch.Tensor, clean_logits: torch.Tensor, labels: torch.Tensor,
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


def attack_batch(run: Run, records: Records, images: torch.Tensor, labels: Any, target: str | torch.Tensor,
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
        seconds = run.timer.seconds - before[0]
        if key is not None:
            run.store.save(key, {**records.last(), "seconds": np.array(seconds),
                                 "repaired": np.array(records.n_repaired - before[1]),
                                 "non_finite": np.array(records.n_non_finite - before[2])})
        LOGGER.info("%s: %d%s records done (the last %d in %.0f s)", run.label, records.done,
                    f" of {run.total}" if run.total else "", len(r), seconds)


def _restored(run: Run, records: Records, key: str) -> bool:
    """Add the chunk saved under ``key`` to ``records`` (and its seconds to the run's); False when the store
    does not hold it (or holds it without the adversarials this run keeps)."""
    arrays = run.store.load(key)
    if arrays is None or not set(COLUMNS) <= set(arrays) or (records.keep_adversarials and "adversarials" not in arrays):
        return False
    records.restore(arrays)
    run.timer.seconds += float(arrays["seconds"])
    return True


def _goal(run: Run, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, correct: torch.Tensor,
          candidate: torch.Tensor) -> torch.Tensor:
    """Whether ``candidate`` reaches the attack's goal for the clean ``x``, evaluated by the fp32 model (an
    input on which the model's logits are not finite reaches nothing)."""
    if run.spec.goal == "cam":
        return run.spec.success(run.model, x.clone(), candidate.clone(), y, run.kwargs).to(y.device) & correct
    logits = _predict(run.model, candidate)
    pred = logits.argmax(1)
    return (pred == t if run.targeted else pred != y) & correct & torch.isfinite(logits).all(1)


def _attack_records(run: Run, records: Records, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                    index: torch.Tensor, clean_pred: torch.Tensor) -> None:
    """Attack one chunk of records (copies of their images ``x``), verify the adversarials and record them."""
    run.counter.reset()
    with run.timer:
        adv = run.spec.fn(run.counter, x, t if run.targeted else y, targeted=run.targeted, **run.kwargs)
    adv = adv.detach() if isinstance(adv, torch.Tensor) else adv
    verify(adv, x, run.bounds, run.levels, run.spec.name)
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


def warn_after(run: Run, records: Records, display: str) -> None:
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
