"""DeepFool L2 (Moosavi-Dezfooli et al., 2016), the reference's second baseline, batched; and foolbox 1.x's
variant of it, which the reference ran (section A V-7: "the implementation from Foolbox, with a budget of
100 iterations"), registered as ``deepfool-fb1``.

Each step linearizes the model around the current point ``x_i`` and moves towards the nearest linearized
boundary among the ``candidates`` classes ranked highest on the clean input: with ``f_k = z_k - z_y`` and
``w_k = grad f_k``, the class ``l = argmin_k |f_k| / ||w_k||`` gives the step
``r_i = (|f_l| / ||w_l|| + 1e-4) w_l / ||w_l||``; the point is ``x_{i+1} = clip(x + (1 + overshoot) sum r_i)``.
The ``1e-4`` (from the original code, also in foolbox 3) pushes a step across a boundary it would only reach.

Beyond / departing from the original and foolbox 3:

* one forward pass per step gives the logits and the graph from which the ``candidates - 1`` gradients are
  taken (one backward pass each through the retained graph); foolbox runs a forward and a backward pass
  per candidate. The clean forward pass is the first step's. On a CPU (C&W MNIST network, 50 to 200
  images, 10 candidates, one thread) this loop of backward passes measured 1.3-1.5x faster than one batched
  vector-Jacobian product (``is_grads_batched``), 1.9x faster than ``torch.func.vmap`` of ``vjp``, 2.7x
  faster than one backward pass through the batch replicated per candidate, and 1.1-1.6x faster than the
  same loop run on chunks of 4 to 32 images. The backward passes take about 80 % of the time: the floor of
  any implementation that takes the same steps, since each step needs every candidate's gradient norm;
* ``prune`` (off by default) skips, after the first step, the candidates whose distance estimated with
  their last gradient norm exceeds ``prune`` times the smallest estimate; a step then takes as many backward
  passes as the most candidates kept for one sample. A heuristic (gradient norms change between steps),
  not DeepFool's rule, hence off: with ``prune=3`` the steps were DeepFool's on all 3,000 attacks tried
  (mnist-5k's 1,000 test digits, 100 steps, on the C&W network trained two ways and on a PGD-trained one)
  at 1.3-1.8x the speed; ``prune=2`` changed one of them, ``prune=1.5`` seven (by at most 8 % in L2);
* a sample leaves the batch as soon as it is adversarial: later steps run on the others only (foolbox keeps
  the whole batch until every sample is done). When many samples are done at once, the others are
  forwarded again on their own rather than back-propagated through a graph that still holds the done ones;
* inputs that are already misclassified are not attacked and come back unchanged, and so do samples still
  correctly classified after ``steps`` steps (their last iterate is evaluated).

``deepfool-fb1`` (:func:`deepfool_fb1`) is foolbox 1.x's ``DeepFoolL2Attack``: the same linearization, but
each step goes from the current point, ``x_{i+1} = clip(x_i + (1 + overshoot) |f_l| / ||w_l||^2 w_l)``,
with ``overshoot = 0.05`` applied to that step alone, no ``1e-4``, the box enforced after every step, and
only candidates whose logit is below the label's at the current point. Where a step is clipped, the part
of it that leaves the box is lost and the next step is as short as the distance left: the iterates can
approach a boundary geometrically without crossing it (on a linear model, whenever the share of
``||w||^2`` on the coordinates free to move is below ``1 / (1 + overshoot)``), and those that cross do so by
a sliver. foolbox 1.x computes ``f_k`` and ``w_k`` from cross-entropy losses; the log-sum-exp terms cancel,
so they equal the logit differences used here up to rounding. It is an attack of its own rather than a
keyword of :func:`deepfool` because its ``overshoot`` means something else, its defaults are the
reference's (100 steps, 0.05) and it has no foolbox backend. On the mnist-5k C&W network (``mnist-cnn``,
its 1,000 test digits) it takes 9.7 steps per digit, 97 gradients as foolbox 1.x counts them (Table A V-1:
98), and succeeds on 99.8 % of the digits in float but on 68.0 % once its adversarials are rounded to
8 bits (advwsl's DeepFool: 100 % and 56.5 %): the reference's 75.4 % fits DeepFool's adversarials scored on
the 8-bit lattice, not a failure of the attack in float.

Untargeted only, as in the original. ``backend="foolbox"`` runs foolbox 3's ``L2DeepFoolAttack`` instead
(foolbox 1.x is not a dependency). Cost per step, on the samples not yet adversarial: one forward pass (two
on some steps) and ``candidates - 1`` input-gradient backward passes; the clean pass is the first step's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import InputError
from ..utils import frozen
from ._foolbox import run_foolbox, with_backend_doc
from ._checks import check_backend_attack, check_model_inputs, check_positive_int, first_logits
from ._ops import per_sample
from .registry import AttackSpec, register_attack

#: Added to each step's distance (original code), and to norms before dividing.
_STEP_PAD, _TINY = 1e-4, 1e-8

#: ``update(x_i, diffs, grads, computed, carry) -> (x_{i+1}, carry)``: one variant's step on the samples still
#: attacked; ``computed`` marks the candidates whose gradient was taken (None: all).
_Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]],
                   tuple[torch.Tensor, tuple[torch.Tensor, ...]]]
#: ``select(diffs, carry) -> computed``: the candidates whose gradient to take this step (see ``prune``).
_Select = Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor]


def _check_hyper_parameters(targeted: bool, steps: int, overshoot: float, candidates: int | None,
                            reference_overshoot: float = 0.02) -> None:
    if targeted:
        raise InputError("DeepFool is an untargeted attack; use ddn or carlini_wagner_l2 for targeted attacks")
    check_positive_int("steps", steps)
    if not (isinstance(overshoot, (int, float)) and math.isfinite(overshoot) and overshoot >= 0):
        raise InputError(f"overshoot must be a number >= 0, got {overshoot!r}; the reference uses "
                         f"{reference_overshoot}")
    if candidates is not None and (not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 2):
        raise InputError(f"candidates must be an integer >= 2 or None (all classes), got {candidates!r}")


def _check_prune(prune: float | None, backend: str) -> None:
    if prune is None:
        return
    if isinstance(prune, bool) or not isinstance(prune, (int, float)) or not (math.isfinite(prune) and prune >= 1):
        raise InputError(f"prune must be None or a number >= 1, got {prune!r}")
    if backend != "native":
        raise InputError("prune is an option of the native backend; leave it at None with backend='foolbox'")


def _candidate_gradients(logits: torch.Tensor, x: torch.Tensor, classes: torch.Tensor,
                         computed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``f_k = z_{c_k} - z_{c_0}`` for ``k = 1..K-1`` (``(n, K-1)``) and their gradients with respect to ``x``
    (``(n, K-1, ...)``), from the one graph of ``logits = model(x)``: one backward pass per candidate, or,
    given ``computed`` ``(n, K-1)``, pass ``j`` takes each sample's ``j``-th marked candidate (the gradients
    of the others stay zero) and there are as many passes as the most candidates marked for one sample."""
    with torch.enable_grad():
        chosen = logits.gather(1, classes)
        diffs = chosen[:, 1:] - chosen[:, :1]
        if computed is None:
            k = diffs.shape[1]
            grads = [torch.autograd.grad(diffs[:, j].sum(), x, retain_graph=j < k - 1)[0] for j in range(k)]
            return diffs.detach(), torch.stack(grads, 1)
        order = computed.to(torch.int8).argsort(dim=1, descending=True, stable=True)  # the marked ones first
        counts, passes = computed.sum(1), int(computed.sum(1).max())
        grads = x.new_zeros((len(x), diffs.shape[1], *x.shape[1:]))
        for j in range(passes):
            on, column = j < counts, order[:, j]
            chosen_j = diffs.gather(1, column[:, None])[:, 0] * on
            g = torch.autograd.grad(chosen_j.sum(), x, retain_graph=j < passes - 1)[0]
            grads[on, column[on]] = g[on]
    return diffs.detach(), grads


def _reforward_pays(done: torch.Tensor, k: int) -> bool:
    """Whether to forward the samples still to attack again, on their own, rather than take the ``k - 1``
    backward passes through the graph that also holds the samples just done: worth it when the done share
    ``p`` makes ``p (k - 1)`` backward passes cost more than ``1 - p`` forward passes (an input-gradient
    backward pass costs one to two forward passes: 1.2-1.7 measured on the C&W MNIST network)."""
    p = float(done.float().mean())
    return p * (k - 1) > 1 - p


def _linearize(model: nn.Module, logits: torch.Tensor, xi: torch.Tensor, classes: torch.Tensor,
               done: torch.Tensor, computed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_candidate_gradients` of the samples not ``done``, from the graph of ``logits = model(xi)``
    or from a new forward pass of those samples alone (:func:`_reforward_pays`)."""
    keep = ~done
    if not bool(done.any()):
        return _candidate_gradients(logits, xi, classes, computed)
    if _reforward_pays(done, classes.shape[1]):
        xk = xi.detach()[keep].requires_grad_(True)
        with torch.enable_grad():
            return _candidate_gradients(model(xk), xk, classes[keep], computed)
    if computed is None:
        diffs, grads = _candidate_gradients(logits[keep], xi, classes[keep])
        return diffs, grads[keep]
    padded = computed.new_zeros((len(xi), computed.shape[1]))  # the done samples take no gradient
    padded[keep] = computed
    diffs, grads = _candidate_gradients(logits, xi, classes, padded)
    return diffs[keep], grads[keep]


def _batched_deepfool(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, steps: int,
                      candidates: int | None, update: _Update,
                      init: Callable[[torch.Tensor, int], tuple[torch.Tensor, ...]],
                      select: _Select | None = None) -> torch.Tensor:
    """The loop both variants share: the first adversarial iterate per sample (the input where none is).
    ``init(x, K - 1)`` gives the per-sample state ``update`` carries; ``select`` (optional) picks the
    candidates whose gradient each step takes. Samples leave the batch once done."""
    result = x.clone()
    with frozen(model):
        xi = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = first_logits(model, xi, labels)  # the clean check is the first linearization's pass
        k = logits.shape[1] if candidates is None else min(candidates, logits.shape[1])
        # classes ranked by clean logit; the first is the label for every sample attacked
        classes = logits.detach().argsort(1, descending=True)[:, :k]
        rows, y, carry = torch.arange(len(x), device=x.device), labels, init(x, k - 1)
        for step in range(steps + 1):
            if step > 0:
                xi = xi.detach().requires_grad_(step < steps)
                with torch.set_grad_enabled(step < steps):
                    logits = model(xi)
            z = logits.detach()
            done = (z.argmax(1) != y) & torch.isfinite(z).all(1)
            if step > 0:  # at step 0, done means misclassified: those inputs come back unchanged
                result[rows[done]] = xi.detach()[done]
            if step == steps or bool(done.all()):
                break
            keep = ~done
            carry = tuple(t[keep] for t in carry)
            computed = None if select is None else select(_gaps(z[keep], classes[keep]), carry)
            diffs, grads = _linearize(model, logits, xi, classes, done, computed)
            rows, classes, y, xi = rows[keep], classes[keep], y[keep], xi.detach()[keep]
            with torch.no_grad():
                xi, carry = update(xi, diffs, grads, computed, carry)
    return result


def _gaps(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``f_k = z_{c_k} - z_{c_0}``, ``k = 1..K-1``."""
    chosen = logits.gather(1, classes)
    return chosen[:, 1:] - chosen[:, :1]


def _nearest(diffs: torch.Tensor, grads: torch.Tensor, norms: torch.Tensor, distances: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample, the candidate ``l`` of smallest distance: ``f_l``, ``w_l``, ``||w_l||`` and its distance."""
    best = distances.argmin(1)
    pick = torch.arange(len(best), device=best.device)
    return diffs[pick, best], grads[pick, best], norms[pick, best], distances[pick, best]


def _native_update(overshoot: float, bounds: tuple[float, float]) -> _Update:
    """The original's and foolbox 3's step: ``r += (d_l + 1e-4) w_l / ||w_l||``, ``x = clip(x0 + (1 + o) r)``,
    ``l`` among the candidates computed. The carry is ``(x0, r, ||w_k||)``, the last norm taken per candidate."""
    def update(xi, diffs, grads, computed, carry):
        x0, r_total, last_norms = carry
        norms = grads.flatten(2).norm(dim=2)
        distances = diffs.abs() / (norms + _TINY)
        if computed is not None:
            distances = distances.masked_fill(~computed, math.inf)
            norms = torch.where(computed, norms, last_norms)
        _, w, w_norm, d = _nearest(diffs, grads, norms, distances)
        r_total = r_total + per_sample((d + _STEP_PAD) / (w_norm + _TINY), w) * w
        return (x0 + (1 + overshoot) * r_total).clamp(*bounds), (x0, r_total, norms)
    return update


def _near_candidates(prune: float) -> _Select:
    """The candidates whose distance, estimated with the last gradient norm taken (infinite before any:
    every candidate on the first step), is within ``prune`` times the smallest estimate."""
    def select(diffs, carry):
        estimates = diffs.abs() / (carry[2] + _TINY)
        return estimates <= prune * estimates.min(1, keepdim=True).values
    return select


def _fb1_update(overshoot: float, bounds: tuple[float, float]) -> _Update:
    """foolbox 1.x's step, among the candidates whose logit is below the label's (``f_k < 0``):
    ``x = clip(x + (1 + o) |f_l| / ||w_l||^2 w_l)``; nothing is carried."""
    def update(xi, diffs, grads, computed, carry):
        norms = grads.flatten(2).norm(dim=2)
        below = torch.where(diffs < 0, diffs.abs() / (norms + _TINY), torch.full_like(diffs, math.inf))
        f, w, w_norm, _ = _nearest(diffs, grads, norms, below)
        scale = (1 + overshoot) * f.abs() / (w_norm + _TINY) ** 2
        return (xi + per_sample(scale, xi) * w).clamp(*bounds), carry
    return update


@with_backend_doc
def deepfool(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
             steps: int = 50, overshoot: float = 0.02, candidates: int | None = 10, prune: float | None = None,
             bounds: tuple[float, float] = (0.0, 1.0), backend: str = "native") -> torch.Tensor:
    """DeepFool L2 attack (untargeted only): the first adversarial iterate per sample.

    Parameters
    ----------
    {model_inputs}
    labels : Tensor
        True labels: integer class indices ``(N,)``.
    targeted : bool
        Must be False: DeepFool has no targeted form.
    steps : int
        Maximum number of linearization steps (50; the reference's tables use 100).
    overshoot : float
        The accumulated perturbation is multiplied by ``1 + overshoot`` (0.02).
    candidates : int or None
        Number of classes, ranked by clean logit, among which the nearest boundary is sought (10); None for
        all classes. Each step costs ``candidates - 1`` backward passes.
    prune : float or None
        None (default): every step takes every candidate's gradient, as DeepFool does. A number ``>= 1``:
        after the first step, a candidate's gradient is taken only when its distance estimated with its
        last gradient norm is within ``prune`` times the smallest estimate (native backend only; see the
        module docstring). Faster, but no longer guaranteed to take DeepFool's steps.
    bounds : (float, float)
        Box the images live in.
    backend : {"native", "foolbox"}
        This module's batched implementation, or foolbox's ``L2DeepFoolAttack``.

    Returns
    -------
    Tensor
        Adversarial images, same shape and dtype as ``inputs``. A sample for which no adversarial was found,
        or that is already misclassified, is returned unchanged.
    """
    lo, hi = check_backend_attack(backend, inputs, labels, bounds)
    _check_hyper_parameters(targeted, steps, overshoot, candidates)
    _check_prune(prune, backend)
    check_model_inputs(model, inputs)
    if backend == "foolbox":
        import foolbox as fb

        attack = fb.attacks.L2DeepFoolAttack(steps=steps, candidates=candidates, overshoot=overshoot)
        return run_foolbox(attack, model, inputs, labels, targeted=False, bounds=(lo, hi))
    return _batched_deepfool(model, inputs.detach(), labels, steps=steps, candidates=candidates,
                             update=_native_update(overshoot, (lo, hi)), select=None if prune is None else
                             _near_candidates(prune), init=lambda x, k: (x, torch.zeros_like(x),
                                                                         x.new_full((len(x), k), math.inf)))


@with_backend_doc
def deepfool_fb1(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
                 steps: int = 100, overshoot: float = 0.05, candidates: int | None = 10,
                 bounds: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """DeepFool L2 as foolbox 1.x's ``DeepFoolL2Attack`` runs it (the reference's DeepFool rows), batched:
    the first adversarial iterate per sample.

    Parameters
    ----------
    {model_inputs}
    labels : Tensor
        True labels: integer class indices ``(N,)``.
    targeted : bool
        Must be False: DeepFool has no targeted form.
    steps : int
        Maximum number of steps (100, foolbox 1.x's default and the reference's budget).
    overshoot : float
        Each step is multiplied by ``1 + overshoot`` before the box clips the new point (0.05: foolbox
        1.x's factor 1.05).
    candidates : int or None
        Number of classes, ranked by clean logit and including the label, among which the nearest boundary
        is sought (10, foolbox 1.x's ``subsample``); None for all classes.
    bounds : (float, float)
        Box the images live in, enforced after every step.

    Returns
    -------
    Tensor
        Adversarial images, same shape and dtype as ``inputs``. A sample for which no adversarial was found,
        or that is already misclassified, is returned unchanged.
    """
    lo, hi = check_backend_attack("native", inputs, labels, bounds)
    _check_hyper_parameters(targeted, steps, overshoot, candidates, reference_overshoot=0.05)
    check_model_inputs(model, inputs)
    return _batched_deepfool(model, inputs.detach(), labels, steps=steps, candidates=candidates,
                             update=_fb1_update(overshoot, (lo, hi)), init=lambda x, k: ())


register_attack(AttackSpec(
    "deepfool", deepfool, "DeepFool", "DeepFool L2 (Moosavi-Dezfooli et al.), minimal L2, untargeted only",
    reference_budget="100", quick_budget="50", targeted=False))
register_attack(AttackSpec(
    "deepfool-fb1", deepfool_fb1, "DeepFool (foolbox 1.x)",
    "DeepFool L2 as foolbox 1.x runs it (the reference's): overshoot 1.05 per step, clipped every step",
    reference_budget="100", quick_budget="50", targeted=False))
