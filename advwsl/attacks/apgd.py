"""Auto-PGD (APGD), L2, with the cross-entropy and DLR losses, and its targeted-DLR form APGD-T (Croce & Hein,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free attacks", ICML
2020: the attacks of AutoAttack).

APGD is PGD within a fixed radius ``epsilon`` (a robust-accuracy attack, not a minimal-norm one, like
:func:`~advwsl.attacks.pgd_l2`) whose step size needs no tuning (section 3 of the paper):

* a random start on the sphere of radius ``epsilon``; a first step of size ``2 epsilon`` along the
  L2-normalized gradient, then steps with momentum ``x_{k+1} = P(x_k + alpha (z_{k+1} - x_k) + (1 - alpha)
  (x_k - x_{k-1}))``, ``z_{k+1} = P(x_k + eta grad / ||grad||)``, ``alpha = 0.75``, ``P`` the
  projection on the ball and then the box;
* checkpoints ``w_j = ceil(p_j N)`` with ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
  0.06)``: at each, the step size ``eta`` is halved, and the iterate reset to the best-loss point, when the
  loss increased on at most a fraction ``rho = 0.75`` of the steps since the last checkpoint (condition 1,
  counted with ``<=`` as the authors' code) or when ``eta`` was not halved at the last checkpoint and the
  best loss has not improved since (condition 2);
* losses: the cross-entropy (APGD-CE) or the Difference of Logits Ratio
  ``DLR = -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)`` (``pi`` sorts the logits decreasingly),
  invariant to shifts and scalings of the logits (APGD-DLR);
* ``restarts`` runs, each from a new random start, on the samples not yet adversarial.

APGD-T (:func:`apgd_t`) is AutoAttack's targeted DLR attack with an untargeted goal: for each of the
``n_target_classes`` classes ranked highest on the clean input after the label, one APGD run (with its
restarts) maximizes ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` on the samples still robust.
Given target labels only (``targeted=True``), :func:`apgd` with ``loss="dlr"`` maximizes
``-(max_{j != t} z_j - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` instead (as adv_lib), and with ``loss="ce"``
minimizes the cross-entropy of the target.

Beyond the paper, as the other attacks of :mod:`advwsl.attacks`:

* the returned adversarial is the lowest-norm adversarial iterate seen (any is within ``epsilon``);
  samples never adversarial, or already misclassified, come back unchanged;
* with ``levels``, every evaluated iterate is put on the lattice without moving any pixel away from the
  input (:func:`~advwsl.attacks.quantize_toward`), so it stays within ``epsilon`` of lattice inputs; the
  optimization state stays continuous.

Each step costs one forward and one backward pass, plus one of each at the random start, per restart and
(APGD-T) per target class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..utils import frozen
from ._checks import check_attack_inputs, check_bounds, first_logits
from ._ops import KeepBest, flat_norms, per_sample, project_l2_ball
from ._shared import (check_levels, check_positive, check_steps, is_adversarial, quantize_toward_box,
                      sphere_directions)
from .registry import AttackSpec, register_attack

__all__ = ["APGD_LOSSES", "apgd", "apgd_ce", "apgd_dlr", "apgd_t", "apgd_checkpoints", "dlr_loss",
           "targeted_dlr_loss"]

#: Losses APGD can maximize: cross-entropy or the Difference of Logits Ratio.
APGD_LOSSES = ("ce", "dlr")
_TINY = 1e-12
Objective = Callable[[torch.Tensor], torch.Tensor]


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample DLR: ``-(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3)``, to maximize."""
    top = logits.topk(3, dim=1).values
    own = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return -(own - other) / (top[:, 0] - top[:, 2] + _TINY)


def targeted_dlr_loss(logits: torch.Tensor, labels: torch.Tensor | None, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample targeted DLR, to maximize: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``, or
    with ``labels=None`` (target known, label not) ``-(max_{j != t} z_j - z_t) / (...)``."""
    top = logits.topk(4, dim=1).values
    own = logits.gather(1, targets[:, None]).squeeze(1)
    if labels is None:
        other = logits.scatter(1, targets[:, None], float("-inf")).amax(1)
    else:
        other = logits.gather(1, labels[:, None]).squeeze(1)
    return -(other - own) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + _TINY)


def apgd_checkpoints(steps: int) -> dict[int, int]:
    """``{iteration: period}``: the 0-based iterations after which the step size is checked, each with the
    number of iterations since the previous check (``p_1 = 0.22``, periods shrinking by ``0.03 N`` to at
    least ``0.06 N``, as in the authors' code)."""
    period, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, i = {}, period - 1
    while i < steps:
        out[i] = period
        period = max(period - shrink, least)
        i += period
    return out


def _objective(loss: str, labels: torch.Tensor, targeted: bool) -> Objective:
    if loss == "ce":
        sign = -1.0 if targeted else 1.0
        return lambda z: sign * F.cross_entropy(z, labels, reduction="none")
    if targeted:
        return lambda z: targeted_dlr_loss(z, None, labels)
    return lambda z: dlr_loss(z, labels)


def _project(x: torch.Tensor, point: torch.Tensor, epsilon: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Onto the ball of radius ``epsilon`` around ``x``, then onto the box (as the authors)."""
    return (x + project_l2_ball(point - x, epsilon)).clamp_(lo, hi)


def _evaluate(model: nn.Module, x_eval: torch.Tensor, objective: Objective) -> tuple[torch.Tensor, ...]:
    """Logits, per-sample loss and its input gradient at ``x_eval``."""
    x_eval = x_eval.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_eval)
        loss = objective(logits)
        grad = torch.autograd.grad(loss.sum(), x_eval)[0]
    return logits.detach(), loss.detach(), grad


class _Run:
    """State of one APGD run: the iterate, its predecessor, step sizes, the best-loss point and the record
    of losses that the checkpoints read."""

    def __init__(self, x: torch.Tensor, x_adv: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor,
                 epsilon: torch.Tensor, steps: int) -> None:
        self.x_adv, self.x_prev, self.grad = x_adv, x_adv, grad
        self.eta = 2 * epsilon
        self.best_x, self.best_grad, self.best_loss = x_adv.clone(), grad.clone(), loss.clone()
        self.losses = torch.empty(steps + 1, x.shape[0], device=x.device, dtype=loss.dtype)
        self.losses[0] = loss
        self.last_best, self.reduced = loss.clone(), torch.zeros_like(loss, dtype=torch.bool)

    def record(self, i: int, x_adv: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor) -> None:
        self.losses[i + 1] = loss
        better = loss > self.best_loss
        self.best_loss = torch.where(better, loss, self.best_loss)
        self.best_x = torch.where(per_sample(better, x_adv), x_adv, self.best_x)
        self.best_grad = torch.where(per_sample(better, grad), grad, self.best_grad)
        self.x_adv, self.grad = x_adv, grad

    def checkpoint(self, i: int, period: int, rho: float) -> None:
        """Halve the step size and restart from the best-loss point where condition 1 or 2 holds."""
        window = self.losses[i + 1 - period:i + 2]
        increased = (window[1:] > window[:-1]).sum(0)
        reduce = (increased <= period * rho) | (~self.reduced & (self.last_best >= self.best_loss))
        self.reduced, self.last_best = reduce, self.best_loss.clone()
        self.eta = torch.where(reduce, self.eta / 2, self.eta)
        self.x_adv = torch.where(per_sample(reduce, self.x_adv), self.best_x, self.x_adv)
        self.grad = torch.where(per_sample(reduce, self.grad), self.best_grad, self.grad)


def _apgd_run(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, objective: Objective, targeted: bool,
              epsilon: torch.Tensor, steps: int, rho: float, alpha: float, levels: int | None,
              bounds: tuple[float, float], generator: torch.Generator | None) -> KeepBest:
    """One APGD run from a random start; the lowest-norm adversarial iterate per sample."""
    lo, hi = bounds
    best = KeepBest(x)
    start = (x + per_sample(epsilon, x) * sphere_directions(x, generator)).clamp_(lo, hi)
    x_eval = quantize_toward_box(x, start, levels, bounds)
    logits, loss, grad = _evaluate(model, x_eval, objective)
    best.update(x_eval, is_adversarial(logits, labels, targeted))
    run = _Run(x, start, loss, grad, epsilon, steps)
    checks = apgd_checkpoints(steps)
    for i in range(steps):
        with torch.no_grad():
            momentum = run.x_adv - run.x_prev
            step = run.grad / per_sample(flat_norms(run.grad).clamp_min(_TINY), run.grad)
            z = _project(x, run.x_adv + per_sample(run.eta, x) * step, epsilon, lo, hi)
            a = alpha if i > 0 else 1.0
            x_new = _project(x, run.x_adv + a * (z - run.x_adv) + (1 - a) * momentum, epsilon, lo, hi)
            run.x_prev = run.x_adv
            x_eval = quantize_toward_box(x, x_new, levels, bounds)
        logits, loss, grad = _evaluate(model, x_eval, objective)
        best.update(x_eval, is_adversarial(logits, labels, targeted))
        run.record(i, x_new, loss, grad)
        if i in checks:
            run.checkpoint(i, checks[i], rho)
    return best


def _check_hyper_parameters(epsilon: float, steps: int, restarts: int, loss: str, rho: float, alpha: float,
                            levels: int | None) -> None:
    check_positive("epsilon", epsilon, hint=" (the L2 radius of the attack; e.g. 0.5 on CIFAR-10, 2 on MNIST)")
    check_steps("steps", steps)
    check_steps("restarts", restarts)
    if loss not in APGD_LOSSES:
        raise InputError(f"loss must be one of {APGD_LOSSES}, got {loss!r}")
    check_positive("rho", rho, upper=1.0, hint="; the paper uses 0.75")
    check_positive("alpha", alpha, upper=1.0, hint="; the paper uses 0.75")
    check_levels(levels)


def _attack_restarts(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, objective_for: Callable[
        [torch.Tensor], Objective], targeted: bool, todo: torch.Tensor, restarts: int, epsilon: float,
        generator: torch.Generator | None, best: KeepBest, **run_kwargs) -> torch.Tensor:
    """``restarts`` APGD runs on the samples of ``todo`` not yet adversarial; ``best`` collects the
    adversarials. Returns the samples still robust."""
    for _ in range(restarts):
        rows = torch.nonzero(todo).flatten()
        if rows.numel() == 0:
            break
        eps = torch.full((rows.numel(),), epsilon, device=x.device, dtype=x.dtype)
        found = _apgd_run(model, x[rows], labels[rows], objective_for(rows), targeted, eps,
                          generator=generator, **run_kwargs)
        hit = torch.zeros_like(todo)
        hit[rows] = torch.isfinite(found.norms)
        adv = x.clone()
        adv[rows] = found.adversarials
        best.update(adv, hit)
        todo = todo & ~hit
    return todo


def _setup(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float],
           seed: int | None, generator: torch.Generator | None, targeted: bool):
    """Checks, the clean logits and the samples to attack (those not already adversarial)."""
    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi), model)
    if generator is None and seed is not None:
        generator = torch.Generator(device=inputs.device).manual_seed(int(seed))
    x, labels = inputs.detach(), labels.long()
    with torch.no_grad():
        logits = first_logits(model, x, labels)
    return x, labels, (lo, hi), generator, logits, ~is_adversarial(logits, labels, targeted)


def apgd(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
         epsilon: float, steps: int = 100, restarts: int = 1, loss: str = "ce", rho: float = 0.75,
         alpha: float = 0.75, levels: int | None = None, bounds: tuple[float, float] = (0.0, 1.0),
         seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Auto-PGD, L2 (Croce & Hein, ICML 2020): an adversarial within ``epsilon`` per sample, where found.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, C)`` (``C >= 3`` for DLR, ``C >= 4`` for targeted DLR). It is run in eval mode
        with parameter gradients off and left exactly as found (mode, ``requires_grad``, no ``.grad``).
    inputs : Tensor
        Images ``(N, ...)`` within ``bounds``; not modified.
    labels : Tensor
        True labels (untargeted) or target labels (``targeted=True``), shape ``(N,)``.
    targeted : bool
        Reach ``labels`` instead of leaving them.
    epsilon : float
        L2 radius of the attack (required; in the units of ``bounds``).
    steps : int
        Iterations per run ``N`` (100, as AutoAttack).
    restarts : int
        Runs from new random starts, each on the samples not yet adversarial (1, as AutoAttack's standard
        version).
    loss : {"ce", "dlr"}
        Cross-entropy (APGD-CE) or Difference of Logits Ratio (APGD-DLR).
    rho : float
        Condition 1's fraction of loss increases (0.75).
    alpha : float
        Weight of the new step against the previous one, the paper's momentum parameter (0.75).
    levels : int or None
        Put every evaluated iterate on this many levels per pixel, never farther from the input (None: floats).
    bounds : (float, float)
        Box the images live in.
    seed, generator
        Source of the random starts (``generator`` wins over ``seed``).

    Returns
    -------
    Tensor
        Adversarial images within ``epsilon`` of the inputs (the lowest-norm adversarial iterate seen). A sample
        for which no adversarial was found, or that is already adversarial, is returned unchanged.
    """
    _check_hyper_parameters(epsilon, steps, restarts, loss, rho, alpha, levels)
    with frozen(model):
        x, labels, bounds, generator, logits, todo = _setup(model, inputs, labels, bounds, seed, generator,
                                                            targeted)
        _require_classes(logits, 3 + int(targeted) if loss == "dlr" else 2, f"APGD with loss={loss!r}")
        best = KeepBest(x)
        _attack_restarts(model, x, labels, lambda rows: _objective(loss, labels[rows], targeted), targeted, todo,
                         restarts, epsilon, generator, best, steps=steps, rho=rho, alpha=alpha, levels=levels,
                         bounds=bounds)
    return best.adversarials


def _require_classes(logits: torch.Tensor, needed: int, what: str) -> None:
    if logits.shape[1] < needed:
        raise InputError(f"{what} needs a model with at least {needed} classes, this one has {logits.shape[1]}; "
                         "use loss='ce' (apgd-ce)")


def apgd_t(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
           epsilon: float, steps: int = 100, restarts: int = 1, n_target_classes: int = 9, rho: float = 0.75,
           alpha: float = 0.75, levels: int | None = None, bounds: tuple[float, float] = (0.0, 1.0),
           seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """APGD-T (AutoAttack): untargeted, by targeted-DLR APGD runs towards the ``n_target_classes`` classes
    ranked highest after the label on the clean input, each on the samples still robust.

    Parameters are those of :func:`apgd` (``labels`` are the true labels; ``targeted`` must be False), and
    ``n_target_classes`` (9, as AutoAttack; at most ``C - 1``). The model needs at least 4 classes.
    Cost: up to ``n_target_classes x restarts`` runs of ``steps + 1`` forward and backward passes.
    """
    if targeted:
        raise InputError("apgd_t is untargeted (it picks its own target classes); use apgd(..., targeted=True, "
                         "loss='dlr') to reach given targets")
    check_steps("n_target_classes", n_target_classes)
    _check_hyper_parameters(epsilon, steps, restarts, "dlr", rho, alpha, levels)
    with frozen(model):
        x, labels, bounds, generator, logits, todo = _setup(model, inputs, labels, bounds, seed, generator, False)
        _require_classes(logits, 4, "APGD-T")
        ranked = logits.scatter(1, labels[:, None], float("-inf")).argsort(1, descending=True)
        best = KeepBest(x)
        for k in range(min(n_target_classes, logits.shape[1] - 1)):
            objective_for = functools.partial(_targeted_objective, labels=labels, targets=ranked[:, k])
            todo = _attack_restarts(model, x, labels, objective_for, False, todo, restarts, epsilon, generator,
                                    best, steps=steps, rho=rho, alpha=alpha, levels=levels, bounds=bounds)
    return best.adversarials


def _targeted_objective(rows: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> Objective:
    return lambda z: targeted_dlr_loss(z, labels[rows], targets[rows])


apgd_ce = functools.partial(apgd, loss="ce")
apgd_ce.__name__ = "apgd_ce"
apgd_dlr = functools.partial(apgd, loss="dlr")
apgd_dlr.__name__ = "apgd_dlr"

register_attack(AttackSpec(
    "apgd-ce", apgd_ce, "APGD-CE", "Auto-PGD L2 with cross-entropy (Croce & Hein, ICML 2020) within a fixed "
    "radius epsilon (pass epsilon), not minimal-norm", reference_budget="100", quick_budget="100",
    minimal_norm=False))
register_attack(AttackSpec(
    "apgd-dlr", apgd_dlr, "APGD-DLR", "Auto-PGD L2 with the Difference of Logits Ratio (Croce & Hein, ICML 2020) "
    "within a fixed radius epsilon (pass epsilon), not minimal-norm", reference_budget="100", quick_budget="100",
    minimal_norm=False))
register_attack(AttackSpec(
    "apgd-t", apgd_t, "APGD-T", "AutoAttack's APGD-T: targeted-DLR Auto-PGD L2 towards the 9 highest other "
    "classes, untargeted goal, within a fixed radius epsilon (pass epsilon)", reference_budget="100",
    quick_budget="100", targeted=False, minimal_norm=False))
