"""Small pieces shared by the attacks beyond the reference (FMN, APGD, FAB): hyper-parameter checks, the
adversarial criterion, the logit margin and quantization for any box."""

from __future__ import annotations

import math

import torch

from ..errors import InputError
from ._ops import quantize, quantize_toward

__all__ = ["check_levels", "check_positive", "check_steps", "is_adversarial", "logit_margin", "on_box_lattice",
           "quantize_toward_box", "sphere_directions"]


def check_steps(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_positive(name: str, value: float, upper: float | None = None, hint: str = "") -> None:
    """``value`` a finite number > 0 (and <= ``upper`` when given)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok or (upper is not None and value > upper):
        span = f"in (0, {upper}]" if upper is not None else "a positive finite number"
        raise InputError(f"{name} must be {span}, got {value!r}{hint}")


def check_levels(levels: int | None) -> None:
    if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool) or levels < 2):
        raise InputError(f"levels must be an integer >= 2 (256 for 8-bit images) or None, got {levels!r}")


def is_adversarial(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per sample: the prediction is the target (``targeted``) or differs from the label."""
    pred = logits.argmax(1)
    return pred == labels if targeted else pred != labels


def logit_margin(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Per sample, the logit difference that is negative exactly on the adversarial side:
    ``z_y - max_{j != y} z_j`` (untargeted) or ``max_{j != t} z_j - z_t`` (targeted)."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


def on_box_lattice(x: torch.Tensor, levels: int | None, bounds: tuple[float, float]) -> torch.Tensor:
    """``x`` (within ``bounds``) rounded to the ``levels``-value lattice of the box, or ``x`` for None."""
    return x if levels is None else quantize(x, levels, bounds)


def quantize_toward_box(inputs: torch.Tensor, adv: torch.Tensor, levels: int | None,
                        bounds: tuple[float, float]) -> torch.Tensor:
    """:func:`~advwsl.attacks._ops.quantize_toward` for any box: on the lattice, no pixel farther from the
    input than it was (so an L2 budget met by ``adv`` still holds when the inputs are on the lattice)."""
    if levels is None:
        return adv
    lo, hi = bounds
    if (lo, hi) == (0.0, 1.0):
        return quantize_toward(inputs, adv, levels)
    scale = hi - lo
    return (quantize_toward((inputs - lo) / scale, (adv - lo) / scale, levels) * scale + lo).clamp_(lo, hi)


def sphere_directions(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One Gaussian direction of unit L2 norm per sample of ``like``."""
    t = torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (like.dim() - 1)))
