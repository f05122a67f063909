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

The phases: :func:`_check_request` (options), :func:`_runner_kwargs` (what the attack receives: what its
spec declares), then batch by batch :mod:`advwsl.attacks._runner_batches` (check and predict a batch, its
targets, attack, verify, record into :class:`~advwsl.attacks._runner_batches.Records`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError, VerificationError
from ..models.cams import require_cams
from ..utils import Timer, model_device
from ._checks import attack_mode, check_labels
from ._runner_batches import Records, Run, attack_batch, on_lattice, warn_after
from .chunks import ChunkStore, function_sha256, module_sha256
from .counting import BAR, CountingModel, counting, total_records
from .precision import precision_context, wrap
from .registry import AttackSpec, get_attack_spec
from .result import AttackResult

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
    run = Run(spec, model, counting(wrap(model, precision, channels_last)), kwargs, tuple(float(b) for b in bounds),
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
    records = Records(keep_adversarials)
    run.label, run.total = f"{display} {spec.budget_label(kwargs)}", total_records(data, targeted, target)
    bar = tqdm(desc=run.label, unit="img", disable=not progress, total=run.total, bar_format=BAR)
    with attack_mode(model), precision_context(model, precision, channels_last):
        for images, batch_labels in iter_batches(data, labels, batch_size):
            attack_batch(run, records, images, batch_labels, target, batch_size, bar)
    bar.close()
    if records.offset == 0:
        raise InputError("data is empty: there is nothing to attack")
    warn_after(run, records, display)
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
