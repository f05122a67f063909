"""Decoupled Direction and Norm (DDN) attack, Algorithm A V-1 of the reference (appendix V).

The norm of the perturbation and its direction are optimized separately: each step moves the
perturbation ``delta`` along the L2-normalized gradient of the loss (step size ``alpha``, cosine-annealed
from 1 to 0.01), then projects it onto the sphere of radius ``epsilon`` around the input, where
``epsilon`` shrinks by ``(1 - gamma)`` when the current iterate is adversarial and grows by
``(1 + gamma)`` otherwise. ``gamma = 0.05`` with ``epsilon_0 = 1`` and ``K = 100`` satisfies eq. A V-8, so
a one-level change of one 8-bit pixel is reachable.

Beyond the reference's description:

* ``epsilon`` is capped at the worst-case norm (distance from the input to the farthest corner of the box);
* a zero gradient is replaced by a random unit direction (drawn once per sample, from ``seed`` /
  ``generator``);
* the final iterate is evaluated too, and the lowest-norm adversarial seen is returned per sample;
* with quantization, the optimization state stays continuous and only the evaluated iterate is put on the
  lattice (after clamping): steps smaller than one quantization level keep accumulating instead of being
  rounded away, which is what makes quantized DDN fail on adversarially trained models otherwise;
* bounds other than (0, 1) scale ``epsilon_0``, ``alpha`` and the lattice, so the attack is
  scale-equivariant.

Each step costs one forward and one backward pass; the logits of that forward decide whether the iterate
it was run on is adversarial. One extra forward evaluates the final iterate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..utils import frozen
from ._checks import check_attack_inputs, check_bounds, check_logits
from ._ops import KeepBest, cosine_step_sizes, quantize
from .registry import AttackSpec, register_attack

#: Losses DDN can follow: the reference's cross-entropy, or the logit margin of C&W (eq. A V-5).
DDN_LOSSES = ("ce", "margin")


def _objective(logits: torch.Tensor, labels: torch.Tensor, loss: str) -> torch.Tensor:
    """Sum over the batch of the quantity untargeted DDN maximizes for ``labels``: the cross-entropy, or the
    margin ``max_{j != y} z_j - z_y``."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    if loss == "ce":
        # The cross-entropy written as softplus(logsumexp_{j != y} z_j - z_y): the same value as
        # F.cross_entropy, but its gradient keeps the true class's share when float32 softmax saturates
        # (p_y rounds to 1, so p_y - 1 = 0 and the usual gradient only raises the other logits).
        return F.softplus(others.logsumexp(1) - true).sum()
    return (others.amax(1) - true).sum()


def _is_adversarial(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == labels if targeted else pred != labels


def _check_hyper_parameters(steps: int, gamma: float, init_epsilon: float, alpha_init: float,
                            alpha_final: float, levels: int | None, loss: str) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 < gamma < 1.0:
        raise InputError(f"gamma must be in (0, 1), got {gamma!r}; the reference uses 0.05 (eq. A V-8)")
    if not init_epsilon > 0:
        raise InputError(f"init_epsilon must be positive, got {init_epsilon!r}; the reference uses 1")
    if not (alpha_init > 0 and alpha_final > 0):
        raise InputError(f"step sizes must be positive, got alpha_init={alpha_init!r}, alpha_final={alpha_final!r}")
    if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool) or levels < 2):
        raise InputError(f"levels must be an integer >= 2 (256 for 8-bit images) or None, got {levels!r}")
    if loss not in DDN_LOSSES:
        raise InputError(f"loss must be one of {DDN_LOSSES}, got {loss!r}")


def ddn(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, targeted: bool = False,
        steps: int = 100, gamma: float = 0.05, init_epsilon: float = 1.0, alpha_init: float = 1.0,
        alpha_final: float = 0.01, levels: int | None = 256, bounds: tuple[float, float] = (0.0, 1.0),
        loss: str = "ce", seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Decoupled Direction and Norm attack (Algorithm A V-1): the lowest-norm adversarial found per sample.

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
        Minimize the loss towards ``labels`` (``m = -1`` in Algorithm A V-1) instead of maximizing it.
    steps : int
        Number of iterations ``K`` (one forward and one backward pass each).
    gamma : float
        Norm update factor: ``epsilon <- (1 -/+ gamma) epsilon`` (eq. A V-8 gives 0.05 for ``K = 100``).
    init_epsilon : float
        Initial norm ``epsilon_0`` in units of the (0, 1) box; scaled by ``upper - lower`` of ``bounds``.
    alpha_init, alpha_final : float
        Step size of the first and last iteration; cosine annealing in between. Scaled like ``init_epsilon``.
    levels : int or None
        Quantize evaluated iterates (and so the result) to this many levels per pixel; None keeps floats.
    bounds : (float, float)
        Box the images live in; iterates are clamped to it before quantization.
    loss : {"ce", "margin"}
        Objective whose gradient gives the direction: the reference's cross-entropy, or the logit margin
        ``max_{j != y} z_j - z_y`` (its gradient points at the nearest linearized boundary when one other
        class dominates).
    seed, generator
        Source of the random directions that replace zero gradients (``generator`` wins over ``seed``).

    Returns
    -------
    Tensor
        Adversarial images, same shape and dtype as ``inputs``. A sample for which no adversarial was found,
        or that is already adversarial (misclassified, or classified as its target), is returned unchanged.
    """
    lo, hi = check_bounds(bounds)
    check_attack_inputs(inputs, labels, (lo, hi), model)
    _check_hyper_parameters(steps, gamma, init_epsilon, alpha_init, alpha_final, levels, loss)
    if generator is None and seed is not None:
        generator = torch.Generator(device=inputs.device).manual_seed(int(seed))

    x = inputs.detach()
    n = x.shape[0]
    view = (n,) + (1,) * (x.dim() - 1)
    labels = labels.long()
    scale = hi - lo
    alphas = [a * scale for a in cosine_step_sizes(steps, alpha_init, alpha_final)]
    tiny = torch.finfo(x.dtype).tiny

    worst_norm = torch.maximum(x - lo, hi - x).flatten(1).norm(dim=1)
    epsilon = torch.full((n,), init_epsilon * scale, device=x.device, dtype=x.dtype).minimum(worst_norm)
    random_dir = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    random_dir /= random_dir.flatten(1).norm(dim=1).clamp_min(tiny).view(view)

    delta = torch.zeros_like(x)
    best = KeepBest(x)

    with frozen(model):
        x_eval = x
        for k, alpha in enumerate(alphas):
            x_eval = x_eval.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = model(x_eval)
                if k == 0:
                    check_logits(logits, labels)
                objective = _objective(logits, labels, loss)
                grad = torch.autograd.grad(-objective if targeted else objective, x_eval)[0]
            with torch.no_grad():
                x_eval = x_eval.detach()
                is_adv = _is_adversarial(logits.detach(), labels, targeted)
                best.update(x_eval, is_adv)

                grad_norm = grad.flatten(1).norm(dim=1)
                direction = torch.where((grad_norm > tiny).view(view),
                                        grad / grad_norm.clamp_min(tiny).view(view), random_dir)
                delta = delta + alpha * direction
                epsilon = torch.where(is_adv, epsilon * (1 - gamma), epsilon * (1 + gamma)).minimum(worst_norm)
                delta = delta * (epsilon / delta.flatten(1).norm(dim=1).clamp_min(tiny)).view(view)
                x_cont = (x + delta).clamp_(lo, hi)
                delta = x_cont - x
                x_eval = quantize(x_cont, levels, (lo, hi)) if levels is not None else x_cont
        with torch.no_grad():
            best.update(x_eval, _is_adversarial(model(x_eval), labels, targeted))

    return best.adversarials


register_attack(AttackSpec(
    "ddn", ddn, "DDN", "Decoupled Direction and Norm (Algorithm A V-1), minimal L2",
    reference_budget="1000", quick_budget="100", runner_params=("levels", "bounds", "seed"),
    check_hyper_parameters=_check_hyper_parameters,
    # the cross-entropy's gradient mixes every class's boundary: on a 10-class linear model DDN 100 ends within
    # 1.2 (not 1.1) of the nearest boundary's distance; loss="margin" follows the nearest one
    contract_factor=1.2))
