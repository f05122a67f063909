"""An attack on the localization itself: a minimal-L2 perturbation that moves a weakly supervised model's
class activation map while its prediction stays the same.

It follows the Decoupled Direction and Norm scheme of Algorithm A V-1 (appendix V of the reference): the
perturbation lives on an ε-sphere around the image; ε shrinks by (1 - γ) after an iterate that reaches
the goal and grows by (1 + γ) otherwise; the direction is the normalized gradient of a differentiable
surrogate of the goal, with a step α cosine-annealed from 1 to 0.01; iterates are clipped to [0, 1] and
quantized; the lowest-norm iterate that reaches the goal is returned.

The goal (a binary decision, like "is adversarial" in Algorithm A V-1) is reached when

* the model still predicts the given label, and
* the Dice (eq. 2.3) between the binarized CAM of that label on the perturbed image and the binarized
  clean CAM is below ``dice_threshold``

(CAMs upsampled to the input size, min-max normalized and binarized at ``cam_threshold``: the
``"minmax"`` rule of :mod:`advwsl.models.cams`).

The direction descends the soft Dice between the perturbed normalized CAM and the clean region. While the
label's logit margin is at or below ``kappa`` times its clean margin, it descends instead the hinge
``max(0, kappa · margin_clean - margin)``, and ε shrinks (a smaller perturbation is closer to the
clean, correctly classified image): the search moves the map without settling across the decision
boundary. ε grows only while the label holds and the CAM has not moved enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..models.cams import DEFAULT_CAM_THRESHOLD, binarize, class_maps, dice_iou, require_cams
from ..utils import frozen
from ._checks import check_attack_inputs, check_logits
from ._ops import KeepBest, cosine_step_sizes, quantize
from .registry import AttackSpec, register_attack

__all__ = ["cam_ddn", "cam_goal_reached", "soft_dice"]


def soft_dice(maps: Tensor, regions: Tensor, eps: float = 1e-6) -> Tensor:
    """Differentiable Dice between maps in [0, 1] (N, H, W) and boolean regions (N, H, W), per sample:
    ``2 Σ p·r / (Σ p + Σ r)`` (eq. 2.3 with the binary prediction relaxed to its activation)."""
    r = regions.to(maps.dtype).flatten(1)
    p = maps.flatten(1)
    return 2 * (p * r).sum(1) / (p.sum(1) + r.sum(1) + eps)


def _margin(logits: Tensor, labels: Tensor) -> Tensor:
    """``z_y - max_{j != y} z_j`` (positive while the label is predicted, as in eq. A V-5)."""
    own = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, labels.view(-1, 1), float("-inf")).amax(1)
    return own - other


def _goal(logits: Tensor, maps: Tensor, labels: Tensor, clean_regions: Tensor, dice_threshold: float,
          cam_threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """(goal reached, label kept, Dice with the clean region) per sample."""
    kept = logits.argmax(1) == labels
    dice, _ = dice_iou(binarize(maps, cam_threshold), clean_regions)
    dice = dice.to(kept.device)
    return kept & (dice < dice_threshold), kept, dice


@torch.no_grad()
def cam_goal_reached(model: nn.Module, inputs: Tensor, adversarials: Tensor, labels: Tensor, *,
                     dice_threshold: float = 0.5, cam_threshold: float = DEFAULT_CAM_THRESHOLD,
                     batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Re-evaluate the goal of :func:`cam_ddn`: for each sample, (reached, dice) where ``reached`` means
    the model predicts ``labels`` on both images and the Dice between the binarized CAMs of that label on
    the clean and adversarial images is below ``dice_threshold``; ``dice`` is that Dice."""
    require_cams(model)
    reached, dices = [], []
    with frozen(model):
        for s in range(0, len(inputs), batch_size):
            x, xa, y = inputs[s:s + batch_size], adversarials[s:s + batch_size], labels[s:s + batch_size]
            logits, cams = model.cams(x)
            adv_logits, adv_cams = model.cams(xa)
            size = x.shape[2:]
            clean_regions = binarize(class_maps(cams, y, size), cam_threshold)
            ok, _, dice = _goal(adv_logits, class_maps(adv_cams, y, size), y, clean_regions, dice_threshold,
                                cam_threshold)
            reached.append((ok & (logits.argmax(1) == y)).cpu())
            dices.append(dice.cpu())
    return torch.cat(reached), torch.cat(dices)


def cam_ddn(model: nn.Module, inputs: Tensor, labels: Tensor, *, targeted: bool = False, steps: int = 100,
            gamma: float = 0.05, init_epsilon: float = 1.0, alpha_init: float = 1.0, alpha_final: float = 0.01,
            dice_threshold: float = 0.5, cam_threshold: float = DEFAULT_CAM_THRESHOLD, kappa: float = 0.0,
            levels: int | None = 256, seed: int | None = None,
            generator: torch.Generator | None = None) -> Tensor:
    """DDN on the CAM (Algorithm A V-1 with the goal "CAM moved, label kept"): for each image, a small
    L2 perturbation after which the model still predicts ``labels`` but the binarized CAM of that class
    has a Dice below ``dice_threshold`` with the clean one.

    Parameters
    ----------
    model : nn.Module
        A weakly supervised classifier with ``cams(x) -> (logits (N, C), cams (N, C, h, w))`` whose CAMs
        are differentiable. Run frozen (eval mode, no parameter gradients) and left exactly as found.
    inputs : Tensor
        Images in [0, 1], (N, C, H, W); not modified.
    labels : Tensor
        The class whose prediction is kept and whose CAM is moved (N,). Samples the model does not
        classify as ``labels`` are returned unchanged (there is no prediction to keep).
    targeted : bool
        Must be False: the label is kept, there is no target class.
    steps : int
        Iterations K (one forward and one backward pass each, plus one forward for the final iterate).
    gamma : float
        Factor γ by which ε changes each iteration (0.05, eq. A V-8).
    init_epsilon : float
        Initial norm ε₀ (1 in the reference); ε is capped at the distance to the farthest box corner.
    alpha_init, alpha_final : float
        Step size of the first and last iteration, cosine annealing in between (1 and 0.01).
    dice_threshold : float
        The goal: Dice between the binarized clean and perturbed CAMs of the label below this value.
    cam_threshold : float
        Binarization threshold of the [0, 1]-normalized, upsampled CAMs.
    kappa : float
        The direction turns to protecting the label when its logit margin ``z_y - max_j z_j`` falls below
        ``kappa`` times the clean margin (0: only once the label is lost).
    levels : int or None
        Quantize evaluated iterates (and so the result) to this many levels (256 = 8 bits); None: floats.
    seed, generator
        Source of the random directions that replace zero gradients.

    Returns
    -------
    Tensor
        The lowest-norm perturbed images that reached the goal; the original image where none did.
    """
    _check_arguments(model, inputs, labels, targeted=targeted, steps=steps, gamma=gamma, init_epsilon=init_epsilon,
                     dice_threshold=dice_threshold, kappa=kappa, levels=levels)
    if generator is None and seed is not None:
        generator = torch.Generator(device=inputs.device).manual_seed(int(seed))
    search = _start(inputs.detach(), init_epsilon, generator)
    goal = {"dice_threshold": dice_threshold, "cam_threshold": cam_threshold}
    with frozen(model):
        clean = _clean(model, search.x, labels, kappa, cam_threshold)
        x_eval = search.x
        for alpha in cosine_step_sizes(steps, alpha_init, alpha_final):
            grad, logits, maps = _surrogate_gradient(model, x_eval, clean)
            x_eval = _step(search, clean, x_eval, grad, logits, maps, alpha=alpha, gamma=gamma, levels=levels,
                           goal=goal)
        with torch.no_grad():  # the final iterate is evaluated too
            logits, cams = model.cams(x_eval)
            reached, _, _ = _goal(logits, class_maps(cams, clean.labels, clean.size), clean.labels, clean.regions,
                                  **goal)
            search.best.update(x_eval, reached & clean.attackable)
    return search.best.adversarials


def _check_arguments(model: nn.Module, inputs: Tensor, labels: Tensor, *, targeted: bool, steps: int, gamma: float,
                     init_epsilon: float, dice_threshold: float, kappa: float, levels: int | None) -> None:
    """The checks of :func:`cam_ddn`'s arguments, before any work."""
    if targeted:
        raise InputError("cam_ddn keeps the predicted label and moves its CAM; it has no targeted mode "
                         "(call it with targeted=False)")
    require_cams(model)
    check_attack_inputs(inputs, labels, (0.0, 1.0), model)
    if inputs.dim() != 4:
        raise InputError(f"inputs must be a batch of images (N, C, H, W), got shape {tuple(inputs.shape)}")
    if not isinstance(steps, int) or steps < 1 or not 0 < gamma < 1 or not init_epsilon > 0:
        raise InputError(f"need an integer steps >= 1, 0 < gamma < 1 and init_epsilon > 0; got steps={steps!r}, "
                         f"gamma={gamma!r}, init_epsilon={init_epsilon!r}")
    if not 0 < dice_threshold <= 1:
        raise InputError(f"dice_threshold must lie in (0, 1], got {dice_threshold!r}")
    if not 0 <= kappa < 1:
        raise InputError(f"kappa is a fraction of the clean logit margin in [0, 1), got {kappa!r}")
    if levels is not None and (not isinstance(levels, int) or levels < 2):
        raise InputError(f"levels must be an integer >= 2 (256 for 8-bit images) or None, got {levels!r}")


@dataclass
class _Search:
    """The state of the ε-sphere search around the clean images ``x`` (Algorithm A V-1)."""

    x: Tensor
    epsilon: Tensor  # per sample, the radius of the sphere
    worst_norm: Tensor  # per sample, the distance to the farthest corner of the box (ε's cap)
    random_dir: Tensor  # a normalized random direction per sample, for a zero gradient
    delta: Tensor
    best: KeepBest
    view: tuple[int, ...]  # shape broadcasting a per-sample value over an image
    tiny: float


def _start(x: Tensor, init_epsilon: float, generator: torch.Generator | None) -> _Search:
    n = x.shape[0]
    view = (n,) + (1,) * (x.dim() - 1)
    tiny = torch.finfo(x.dtype).tiny
    worst_norm = torch.maximum(x, 1 - x).flatten(1).norm(dim=1)
    epsilon = torch.full((n,), float(init_epsilon), device=x.device, dtype=x.dtype).minimum(worst_norm)
    random_dir = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    random_dir /= random_dir.flatten(1).norm(dim=1).clamp_min(tiny).view(view)
    return _Search(x, epsilon, worst_norm, random_dir, torch.zeros_like(x), KeepBest(x), view, tiny)


@dataclass
class _Clean:
    """What the goal compares with: the clean predictions, CAM regions and margins."""

    labels: Tensor
    attackable: Tensor  # samples the model classifies as their label (the others are returned unchanged)
    guard: Tensor  # kappa times the clean logit margin: below it, the direction protects the label
    regions: Tensor  # the binarized clean CAM of the label
    size: torch.Size


def _clean(model: nn.Module, x: Tensor, labels: Tensor, kappa: float, cam_threshold: float) -> _Clean:
    with torch.no_grad():
        logits, cams = model.cams(x)
    check_logits(logits, labels)
    labels = labels.long()
    size = x.shape[2:]
    return _Clean(labels, logits.argmax(1) == labels, kappa * _margin(logits, labels).clamp_min(0),
                  binarize(class_maps(cams, labels, size), cam_threshold), size)


def _surrogate_gradient(model: nn.Module, x_eval: Tensor, clean: _Clean) -> tuple[Tensor, Tensor, Tensor]:
    """(gradient of the surrogate, logits, label CAMs) at ``x_eval``: the soft Dice with the clean region, or
    the margin hinge while the label is at risk."""
    x_eval = x_eval.detach().requires_grad_(True)
    with torch.enable_grad():
        logits, cams = model.cams(x_eval)
        maps = class_maps(cams, clean.labels, clean.size)
        margin = _margin(logits, clean.labels)
        protect = margin.detach() <= clean.guard
        objective = torch.where(protect, (clean.guard - margin).clamp_min(0), soft_dice(maps, clean.regions))
        grad = torch.autograd.grad(objective.sum(), x_eval)[0]
    return grad, logits.detach(), maps.detach()


@torch.no_grad()
def _step(search: _Search, clean: _Clean, x_eval: Tensor, grad: Tensor, logits: Tensor, maps: Tensor, *,
          alpha: float, gamma: float, levels: int | None, goal: dict[str, float]) -> Tensor:
    """Keep ``x_eval`` if it reaches the goal, step along the normalized gradient, resize ε (eq. A V-8) and
    project onto the sphere and the box; returns the next (quantized) iterate."""
    x_eval = x_eval.detach()
    reached, kept, _ = _goal(logits, maps, clean.labels, clean.regions, **goal)
    search.best.update(x_eval, reached & clean.attackable)
    x, view, tiny = search.x, search.view, search.tiny
    grad_norm = grad.flatten(1).norm(dim=1)
    direction = torch.where((grad_norm > tiny).view(view), -grad / grad_norm.clamp_min(tiny).view(view),
                            search.random_dir)
    delta = search.delta + alpha * direction
    # grow ε only while the label holds and the CAM has not moved enough
    grow = kept & ~reached
    search.epsilon = torch.where(grow, search.epsilon * (1 + gamma), search.epsilon * (1 - gamma)).minimum(
        search.worst_norm)
    delta = delta * (search.epsilon / delta.flatten(1).norm(dim=1).clamp_min(tiny)).view(view)
    x_cont = (x + delta).clamp_(0, 1)
    search.delta = torch.where(clean.attackable.view(view), x_cont - x, torch.zeros_like(x))
    return quantize(x + search.delta, levels) if levels is not None else x + search.delta


def _cam_success(model: nn.Module, inputs: Tensor, adversarials: Tensor, labels: Tensor,
                 kwargs: dict[str, Any]) -> Tensor:
    """The runner's success predicate of ``cam-ddn``: the goal re-evaluated on what the attack returned."""
    goal = {k: kwargs[k] for k in ("dice_threshold", "cam_threshold") if k in kwargs}
    reached, _ = cam_goal_reached(model, inputs, adversarials, labels, batch_size=len(inputs), **goal)
    return reached


register_attack(AttackSpec(
    "cam-ddn", cam_ddn, "CAM-DDN", "DDN on the class activation map: move the CAM, keep the label",
    reference_budget="100", quick_budget="100", targeted=False, goal="cam", success=_cam_success))
