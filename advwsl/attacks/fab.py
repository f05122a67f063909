"""Fast Adaptive Boundary (FAB) attack, L2 (Croce & Hein, "Minimally distorted adversarial examples with a
fast adaptive boundary attack", ICML 2020), minimal-norm.

Each step linearizes the classifier at the current iterate ``x_k``: among the other classes ``j``, the
hyperplane ``f_j(x_k) + grad f_j(x_k) . (z - x_k) = 0`` of ``f_j = z_j - z_y`` closest in L2
(``|f_j| / ||grad f_j||``, as DeepFool) is chosen, and both ``x_k`` and the input ``x`` are projected onto
it within the box, giving ``d_k`` and ``d_x`` (the exact projection onto a hyperplane intersected with a
box: a one-dimensional piecewise-linear equation solved through its sorted breakpoints). The next iterate
biases the step towards the input:

    x_{k+1} = clip((1 - a) (x_k + eta d_k) + a (x + eta d_x)),   a = min(||d_k|| / (||d_k|| + ||d_x||), alpha_max)

with the extrapolation ``eta = 1.05`` and ``alpha_max = 0.1``. When ``x_{k+1}`` is adversarial it is
recorded and pulled back towards the input, ``x + beta (x_{k+1} - x)`` with ``beta = 0.9`` (the backward
step). ``restarts`` runs are made, the first from the input, the others from random points at distance
``min(||best||, restart_radius) / 2`` (``restart_radius`` is AutoAttack's L2 ``eps = 1``).

Targeted (``targeted=True``, ``labels`` the targets): the hyperplane is that of ``z_c - z_t`` for the class
``c != t`` of highest logit at ``x_k``, which costs one backward pass per step instead of ``C - 1``.

Beyond the paper, as in :mod:`advwsl.attacks.ddn`:

* ``candidates`` (default: all classes) limits the hyperplanes to the classes ranked highest on the clean
  input, as DeepFool's ``candidates``;
* with quantization, FAB runs on floats and its best adversarial is put on the lattice at the end: rounded,
  or where rounding loses it, lengthened along its own direction by 0.1 %, 0.2 %, 0.4 %, ... up to 25.6 %
  and rounded, the first that stays adversarial. Checking rounded iterates instead (as DDN and FMN here)
  leaves FAB hovering at the boundary, where rounding decides: on a digits CNN it lost 6 % of the samples
  and raised the median norm by 7 %;
* ``final_search`` steps (3) of the authors' first implementation (an option there, left out of
  AutoAttack) end the attack: between the last non-adversarial point and the best adversarial, the point
  where the linearly interpolated logit margin crosses zero replaces one of them. It removes the overshoot
  that the extrapolation ``eta`` leaves (0.5 % of the norm on a linear model) for 2 + 3 forward passes;
* bounds other than (0, 1) scale ``restart_radius``; inputs already adversarial and failures come back
  unchanged.

Each step costs one forward pass and ``C - 1`` (targeted: 1) backward passes for the gradients, and one
forward pass to check the new iterate; the final search 2 + ``final_search`` forward passes, and putting
the result on the lattice 1 to 10.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError
from ..utils import frozen
from ._checks import check_attack_inputs, check_bounds, first_logits
from ._ops import KeepBest, flat_norms, per_sample, quantize
from ._shared import check_levels, check_positive, check_steps, is_adversarial, logit_margin, sphere_directions
from .deepfool import _candidate_gradients
from .registry import AttackSpec, register_attack

__all__ = ["fab", "project_onto_hyperplane_box"]

_TINY = 1e-12
#: Relative lengthening of the final search's interpolation (a point computed to lie on the boundary lies on
#: either side of it to float precision).
_OVERSHOOT = 1e-4
#: Lengthenings of a float adversarial tried, in turn, to put it on the lattice (FAB's results lie just past
#: the boundary, so rounding loses about half of them, most for a fraction of a percent of their norm).
_LATTICE_SCALES = (1.0, *(1 + 0.001 * 2 ** k for k in range(9)))


def project_onto_hyperplane_box(points: torch.Tensor, w: torch.Tensor, c: torch.Tensor, lower: float,
                                upper: float) -> torch.Tensor:
    """The shortest ``d`` (L2) per row with ``w . d = -c`` and ``lower <= points + d <= upper``.

    ``points`` and ``w`` are ``(n, d)``, ``c`` is ``(n,)`` (the value at ``points`` of the affine function
    whose zero set is the hyperplane). The minimizer is ``d(lam) = clip(-lam w, lower - p, upper - p)`` for
    the ``lam >= 0`` (after making ``c >= 0``) at which ``-w . d(lam)``, piecewise linear and non-decreasing
    with breakpoints where coordinates reach the box, equals ``c``. When the box does not meet the
    hyperplane, the box point farthest along ``-w`` is returned (``lam = inf``). Computed in float64 (the
    breakpoint sums cancel), returned in the dtype of ``points``."""
    dtype = points.dtype
    points, w, c = points.double(), w.double(), c.double()
    sign = torch.where(c < 0, -1.0, 1.0).to(w.dtype)
    w, c = w * sign[:, None], c * sign
    lo, hi = lower - points, upper - points
    # lam at which each coordinate saturates; inf where w = 0 (never moves)
    lam = torch.where(w > 0, -lo / w, torch.where(w < 0, -hi / w, torch.full_like(w, float("inf"))))
    lam = lam.clamp_min(0)
    lam_sorted, order = lam.sort(1)
    w2 = w.square().gather(1, order)
    total = w2.sum(1, keepdim=True)
    cum_w2 = w2.cumsum(1)
    cum_lw2 = torch.where(w2 > 0, w2 * lam_sorted, torch.zeros_like(w2)).cumsum(1)
    # -w . d at each breakpoint: lam_k * (weight still free) + what the saturated coordinates reached
    reach = torch.where(torch.isfinite(lam_sorted), lam_sorted * (total - cum_w2) + cum_lw2,
                        torch.full_like(w2, float("inf"))).cummax(1).values  # monotone despite rounding
    k = torch.searchsorted(reach, c[:, None].contiguous()).clamp_max(w.shape[1] - 1)
    prev = (k - 1).clamp_min(0)
    free = total - torch.where(k > 0, cum_w2.gather(1, prev), torch.zeros_like(k, dtype=w.dtype))
    done = torch.where(k > 0, cum_lw2.gather(1, prev), torch.zeros_like(k, dtype=w.dtype))
    feasible = torch.isfinite(reach.gather(1, k)) & (reach.gather(1, k) >= c[:, None])
    lam_opt = torch.where(free > _TINY, (c[:, None] - done) / free.clamp_min(_TINY), torch.zeros_like(free))
    lam_opt = torch.where(feasible, lam_opt, torch.full_like(lam_opt, float("inf")))
    step = torch.where(w == 0, torch.zeros_like(w), -lam_opt * w)
    return torch.minimum(torch.maximum(step, lo), hi).to(dtype)


def _hyperplane(model: nn.Module, x_k: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor | None,
                targeted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f, grad f)`` at ``x_k`` of the chosen linearized boundary, ``f > 0`` meaning not yet across it for
    untargeted attacks (``f = z_y - z_j``) and ``f = z_c - z_t`` for targeted ones."""
    x_k = x_k.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x_k)
    if targeted:
        rival = logits.detach().scatter(1, labels[:, None], float("-inf")).argmax(1)
        diffs, grads = _candidate_gradients(logits, x_k, torch.stack([labels, rival], 1))
        return diffs[:, 0], grads[:, 0]
    diffs, grads = _candidate_gradients(logits, x_k, classes)  # z_j - z_y for the other classes
    distance = diffs.abs() / grads.flatten(2).norm(dim=2).clamp_min(_TINY)
    pick = distance.argmin(1)
    rows = torch.arange(len(pick), device=pick.device)
    return -diffs[rows, pick], -grads[rows, pick]


def _fab_step(x: torch.Tensor, x_k: torch.Tensor, f: torch.Tensor, g: torch.Tensor, eta: float,
              alpha_max: float, bounds: tuple[float, float]) -> torch.Tensor:
    """The biased, extrapolated step from the projections of ``x_k`` and ``x`` on the hyperplane."""
    lo, hi = bounds
    n = x.shape[0]
    w = g.flatten(1)
    c_k = f
    c_x = f + (w * (x - x_k).flatten(1)).sum(1)
    d = project_onto_hyperplane_box(torch.cat([x_k.flatten(1), x.flatten(1)]), torch.cat([w, w]),
                                    torch.cat([c_k, c_x]), lo, hi)
    d_k, d_x = d[:n].view_as(x), d[n:].view_as(x)
    n_k, n_x = flat_norms(d_k).clamp_min(1e-8), flat_norms(d_x).clamp_min(1e-8)
    a = per_sample((n_k / (n_k + n_x)).clamp(0, alpha_max), x)
    return ((1 - a) * (x_k + eta * d_k) + a * (x + eta * d_x)).clamp_(lo, hi)


def _fab_run(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor | None,
             targeted: bool, start: torch.Tensor, best: KeepBest, *, steps: int, eta: float, alpha_max: float,
             beta: float, bounds: tuple[float, float]) -> None:
    """One FAB run from ``start``; ``best`` records the adversarial iterates."""
    x_k = start
    for _ in range(steps):
        f, g = _hyperplane(model, x_k, labels, classes, targeted)
        with torch.no_grad():
            x_k = _fab_step(x, x_k, f, g, eta, alpha_max, bounds)
            adv = is_adversarial(model(x_k), labels, targeted)
            best.update(x_k, adv)
            x_k = torch.where(per_sample(adv, x), x + beta * (x_k - x), x_k)


def _final_search(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool, best: KeepBest,
                  steps: int) -> None:
    """The authors' final search: between the last non-adversarial point ``a`` (first the input) and the
    best adversarial ``b``, the point where the logit margin, interpolated linearly, crosses zero; it
    replaces ``b`` when adversarial, ``a`` otherwise."""
    found = torch.isfinite(best.norms)
    if steps == 0 or not bool(found.any()):
        return
    rows = torch.nonzero(found).flatten()
    x, y = x[rows], labels[rows]
    a, b = x, best.adversarials[rows]
    m_a, m_b = logit_margin(model(a), y, targeted), logit_margin(model(b), y, targeted)
    for _ in range(steps):
        t = m_a / (m_a - m_b).clamp_min(_TINY) * (1 + _OVERSHOOT)  # just past, not onto, the linear zero
        t = torch.where((t >= 0) & (t <= 1), t, torch.ones_like(t))
        point = torch.lerp(a, b, per_sample(t, a))
        logits = model(point)
        adv, margin = is_adversarial(logits, y, targeted), logit_margin(logits, y, targeted)
        a, m_a = torch.where(per_sample(adv, a), a, point), torch.where(adv, m_a, margin)
        b, m_b = torch.where(per_sample(adv, b), point, b), torch.where(adv, margin, m_b)
        update = torch.zeros_like(found)
        update[rows] = adv
        candidate = best.adversarials.clone()
        candidate[rows] = point
        best.update(candidate, update)


def _to_lattice(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool, best: KeepBest,
                levels: int, bounds: tuple[float, float]) -> None:
    """Put the adversarials on the lattice: rounded, or where rounding loses them, lengthened along their
    direction by the first of :data:`_LATTICE_SCALES` that survives rounding; samples lost either way revert
    to the input."""
    lo, hi = bounds
    todo = torch.isfinite(best.norms)
    delta = best.adversarials - x
    out = x.clone()
    for scale in _LATTICE_SCALES:
        if not bool(todo.any()):
            break
        candidate = quantize((x + scale * delta).clamp(lo, hi), levels, bounds)
        hit = todo & is_adversarial(model(candidate), labels, targeted)
        out = torch.where(per_sample(hit, x), candidate, out)
        todo &= ~hit
    kept = (out != x).flatten(1).any(1)
    best.adversarials = out
    best.norms = torch.where(kept, flat_norms(out - x), torch.full_like(best.norms, float("inf")))


def _check_hyper_parameters(steps: int, restarts: int, alpha_max: float, eta: float, beta: float,
                            restart_radius: float, candidates: int | None, levels: int | None) -> None:
    check_steps("steps", steps)
    check_steps("restarts", restarts)
    check_positive("alpha_max", alpha_max, upper=1.0, hint="; the paper uses 0.1")
    check_positive("eta", eta, hint="; the paper uses 1.05")
    check_positive("beta", beta, upper=1.0, hint="; the paper uses 0.9")
    check_positive("restart_radius", restart_radius)
    if candidates is not None and (not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 2):
        raise InputError(f"candidates must be an integer >= 2 or None (all classes), got {candidates!r}")
    check_levels(levels)


def fab(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
        steps: int = 100, restarts: int = 1, alpha_max: float = 0.1, eta: float = 1.05, beta: float = 0.9,
        restart_radius: float = 1.0, candidates: int | None = None, final_search: int = 3,
        levels: int | None = 256, bounds: tuple[float, float] = (0.0, 1.0), seed: int | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Fast Adaptive Boundary attack, L2 (Croce & Hein, ICML 2020): the lowest-norm adversarial found per sample.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, C)`` for images within ``bounds``. It is run in eval mode with parameter
        gradients off and left exactly as found (mode, ``requires_grad``, no ``.grad``).
    inputs : Tensor
        Images ``(N, ...)`` within ``bounds``; not modified.
    labels : Tensor
        True labels (untargeted) or target labels (``targeted=True``), shape ``(N,)``.
    targeted : bool
        Reach ``labels`` (linearizing the boundary of the strongest other class) instead of leaving them.
    steps : int
        Iterations per run (100, as the paper and AutoAttack).
    restarts : int
        Runs; the first starts from the input, the others from random points (1, as AutoAttack's standard
        version).
    alpha_max, eta, beta : float
        Largest bias towards the input's projection (0.1), extrapolation (1.05) and backward step (0.9).
    restart_radius : float
        Upper bound of twice the distance of a random start from the input (AutoAttack's L2 ``eps = 1``), in
        units of the (0, 1) box.
    candidates : int or None
        Hyperplanes among the classes ranked highest on the clean input (None: all ``C - 1`` others).
    final_search : int
        Steps of the final search between the input and the best adversarial (3, as the authors' first
        code; 0 for AutoAttack's FAB). One forward pass each, plus two.
    levels : int or None
        Put the result on this many levels per pixel (see the module docstring); None keeps floats.
    bounds : (float, float)
        Box the images live in.
    seed, generator
        Source of the random restarts (``generator`` wins over ``seed``).

    Returns
    -------
    Tensor
        Adversarial images, same shape and dtype as ``inputs``. A sample for which no adversarial was found,
        or that is already adversarial (misclassified, or classified as its target), is returned unchanged.
    """
    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi), model)
    _check_hyper_parameters(steps, restarts, alpha_max, eta, beta, restart_radius, candidates, levels)
    check_steps("final_search", final_search, minimum=0)
    if generator is None and seed is not None:
        generator = torch.Generator(device=inputs.device).manual_seed(int(seed))
    x, labels = inputs.detach(), labels.long()
    best = KeepBest(x)
    with frozen(model):
        with torch.no_grad():
            logits = first_logits(model, x, labels)
        todo = torch.nonzero(~is_adversarial(logits, labels, targeted)).flatten()
        if todo.numel() == 0:
            return best.adversarials
        k = logits.shape[1] if candidates is None else min(candidates, logits.shape[1])
        others = logits[todo].scatter(1, labels[todo, None], float("-inf")).argsort(1, descending=True)
        classes = None if targeted else torch.cat([labels[todo, None], others[:, :k - 1]], 1)
        sub = KeepBest(x[todo])
        for r in range(restarts):
            start = x[todo]
            if r > 0:
                radius = sub.norms.clamp_max(restart_radius * (hi - lo)) / 2
                start = (start + per_sample(radius, start) * sphere_directions(start, generator)).clamp_(lo, hi)
            _fab_run(model, x[todo], labels[todo], classes, targeted, start, sub, steps=steps, eta=eta,
                     alpha_max=alpha_max, beta=beta, bounds=(lo, hi))
        with torch.no_grad():
            _final_search(model, x[todo], labels[todo], targeted, sub, final_search)
            if levels is not None:
                _to_lattice(model, x[todo], labels[todo], targeted, sub, levels, (lo, hi))
        best.adversarials[todo] = sub.adversarials
    return best.adversarials


register_attack(AttackSpec(
    "fab", fab, "FAB", "Fast Adaptive Boundary L2 (Croce & Hein, ICML 2020), minimal L2",
    reference_budget="100", quick_budget="20"))
