"""The native C&W L2 search (:mod:`advwsl.attacks.carlini_wagner` describes the attack, its budgets and
where it departs from the original): per-sample binary search on the constant ``c`` (:func:`_next_const`),
an Adam step on every row (:func:`_adam_step`), the early-abort schedule (:func:`_check_schedule`), and
the loop that moves each sample to its next ``c`` as soon as its search for the current one ends
(:func:`carlini_wagner_native`, which :func:`advwsl.attacks.carlini_wagner_l2` runs after checking its
arguments)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..utils import frozen
from ._checks import first_logits

#: Adam's hyper-parameters (those of the original and of foolbox).
_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
#: ``arctanh`` of the box's ends is infinite: inputs are shrunk by this factor first (as in the original).
_TANH_SHRINK = 0.999999
#: An upper bound of ``c`` at or above this means "no adversarial found yet" (original code).
_NO_UPPER = 1e10
#: Early abort: a sample's search for one ``c`` ends at a check where its loss is not below this factor
#: times its loss ``abort_window`` steps earlier (the original's criterion, over a tenth of ``steps``) ...
_ABORT_TOLERANCE = 0.9999
#: ... checked at least every this many steps.
_CHECK_EVERY = 100


def _margin(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """``z_y - max_{j != y} z_j`` (untargeted) or ``max_{j != t} z_j - z_t`` (targeted): negative once the
    sample is adversarial."""
    own = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


def _is_adversarial(margin: torch.Tensor, confidence: float) -> torch.Tensor:
    """Adversarial with margin ``confidence`` (the original's ``compare``, ties aside): ``margin + kappa < 0``.
    NaN margins (non-finite logits) are never adversarial."""
    return (margin + confidence < 0) & torch.isfinite(margin)


def _next_const(found: torch.Tensor, const: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                next_step: torch.Tensor, binary_search_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the original's binary search on ``c``: ``(const, lower, upper)`` after a search at
    ``const`` that ``found`` an adversarial or not, for the search step ``next_step`` (0-based) to come."""
    upper = torch.where(found, torch.minimum(upper, const), upper)
    lower = torch.where(found, lower, torch.maximum(lower, const))
    bisect = upper < _NO_UPPER / 10
    const = torch.where(bisect, (lower + upper) / 2, torch.where(found, const, const * 10))
    if binary_search_steps >= 10:  # the original reruns the smallest succeeding c in its last step
        const = torch.where(next_step == binary_search_steps - 1, upper, const)
    return const, lower, upper


def _check_schedule(steps: int, window: int | None, window_found: int | None = None) -> tuple[int, int, int]:
    """``(every, k, k_found)``: early-abort checks every ``every`` steps, each comparing the loss with the one
    ``k`` checks earlier, so over about ``window`` steps (default a tenth of ``steps``, the original's), or
    ``k_found`` checks earlier (about ``window_found`` steps, at most ``window``) once the sample's search for
    the current ``c`` has found an adversarial."""
    window = max(steps // 10, 1) if window is None else window
    window_found = window if window_found is None else min(window_found, window)
    every = max(min(window, window_found, _CHECK_EVERY), 1)
    return every, max(window // every, 1), max(window_found // every, 1)


def _initial_state(x: torch.Tensor, labels: torch.Tensor, initial_const: float, scale: float,
                   offset: float) -> dict[str, torch.Tensor]:
    """The search state of the samples ``x`` (the rows to attack), one row per sample."""
    n = len(x)
    w0 = torch.atanh((x - offset) / scale * _TANH_SHRINK)
    const = torch.full((n,), float(initial_const), dtype=torch.float64, device=x.device)
    return {
        "x": x, "y": labels, "w0": w0, "rec": torch.tanh(w0) * scale + offset,
        "const": const, "c": const.to(x.dtype), "lower": torch.zeros_like(const),
        "upper": torch.full_like(const, _NO_UPPER),
        "search": torch.zeros(n, dtype=torch.long, device=x.device),  # binary search step
        "best_norm": x.new_full((n,), math.inf), "best_adv": x.clone(), "best_const": torch.full_like(const, math.nan),
        # the Adam search for the current c: the tanh-space iterate u = w0 + modifier, moments, steps taken
        "u": w0.clone(), "m": torch.zeros_like(w0), "v": torch.zeros_like(w0),
        "t": x.new_zeros(n),
        "found": torch.zeros(n, dtype=torch.bool, device=x.device),
    }


def _adam_step(model: nn.Module, s: dict[str, torch.Tensor], *, targeted: bool, stepsize: float,
               confidence: float, scale: float, offset: float) -> torch.Tensor:
    """One forward and backward pass on every row: keep the iterate if it is the lowest-norm adversarial so
    far, take an Adam step, and return the loss of the iterate (no host synchronization)."""
    view = (-1,) + (1,) * (s["u"].dim() - 1)
    u = s["u"].requires_grad_(True)
    with torch.enable_grad():
        x_new = torch.tanh(u) * scale + offset
        logits = model(x_new)
        distance = (x_new - s["rec"]).flatten(1).pow(2).sum(1)
        margin = _margin(logits, s["y"], targeted)
        loss = distance + s["c"] * (margin + confidence).clamp_min(0)
        grad = torch.autograd.grad(loss.sum(), u)[0]
    with torch.no_grad():
        x_new, is_adv = x_new.detach(), _is_adversarial(margin.detach(), confidence)
        norm = (x_new - s["x"]).flatten(1).norm(dim=1)
        better = is_adv & (norm < s["best_norm"])
        s["best_norm"] = torch.where(better, norm, s["best_norm"])
        s["best_adv"] = torch.where(better.view(view), x_new, s["best_adv"])
        s["best_const"] = torch.where(better, s["const"], s["best_const"])
        s["found"] = s["found"] | is_adv
        s["t"] = t = s["t"] + 1
        s["m"].mul_(_BETA1).add_(grad, alpha=1 - _BETA1)
        s["v"].mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
        m_hat = s["m"] / (1 - _BETA1 ** t).view(view)
        v_hat = s["v"] / (1 - _BETA2 ** t).view(view)
        s["u"] = u.detach() - stepsize * m_hat / (v_hat.sqrt() + _ADAM_EPS)
    return loss.detach()


def _steps_to_event(t: torch.Tensor, steps: int, every: int | None) -> int:
    """Adam steps (on every row) before the next step after which some row may end its search: its last
    step, or with early abort (``every``) a check (one host synchronization)."""
    gap = steps - 1 - t
    if every is not None:
        gap = torch.minimum(gap, (-t) % every)
    return int(gap.min())


def carlini_wagner_native(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, *, targeted: bool,
                           binary_search_steps: int, steps: int, stepsize: float, initial_const: float,
                           confidence: float, abort_early: bool, bounds: tuple[float, float],
                           abort_window: int | None = None,
                           abort_window_found: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every sample runs its own binary search: when its Adam search for one ``c`` ends (early abort or
    ``steps`` done), it moves to its next ``c`` at once, with a fresh Adam state, so the batch holds all
    the samples with searches left; a sample leaves it after its last search. The host reads the state only
    at the steps where some sample may end a search. Returns the adversarials and each sample's constant."""
    lo, hi = bounds
    scale, offset = (hi - lo) / 2, (hi + lo) / 2
    result, constants = x.clone(), torch.full((len(x),), math.nan, dtype=torch.float64, device=x.device)
    every, k, k_found = _check_schedule(steps, abort_window, abort_window_found)
    every = every if abort_early else None
    with frozen(model):
        with torch.no_grad():
            clean = first_logits(model, x, labels)
        rows = torch.nonzero(~_is_adversarial(_margin(clean, labels, targeted), 0.0)).flatten()  # batch positions
        s = _initial_state(x[rows], labels[rows], initial_const, scale, offset)
        s["hist"] = x.new_full((len(rows), k), math.inf)  # the losses at a sample's last k checks
        gap = 0 if rows.numel() else -1
        while rows.numel():
            loss = _adam_step(model, s, targeted=targeted, stepsize=stepsize, confidence=confidence,
                              scale=scale, offset=offset)
            if gap > 0:
                gap -= 1
                continue
            with torch.no_grad():
                step = s["t"] - 1  # Adam steps taken at this c before the one just taken
                ended = step == steps - 1
                if every is not None:
                    check = step % every == 0
                    index = torch.div(step, every, rounding_mode="floor").long()  # of the check, in this search
                    slot = (index % k)[:, None]
                    earlier = s["hist"].gather(1, slot).squeeze(1)  # the loss k checks ago (inf: none yet)
                    compare = earlier
                    if k_found < k:  # once an adversarial is found: the loss k_found checks ago
                        found_slot = ((index - k_found) % k)[:, None]
                        compare = torch.where(s["found"], s["hist"].gather(1, found_slot).squeeze(1), earlier)
                    ended = ended | (check & (loss > _ABORT_TOLERANCE * compare))
                    s["hist"] = s["hist"].scatter(1, slot, torch.where(check, loss, earlier)[:, None])
                if bool(ended.any()):
                    s, rows = _next_search(s, rows, ended, binary_search_steps, result, constants)
                if rows.numel():
                    gap = _steps_to_event(s["t"], steps, every)
    return result, constants


def _next_search(s: dict[str, torch.Tensor], rows: torch.Tensor, ended: torch.Tensor, binary_search_steps: int,
                 result: torch.Tensor, constants: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Samples whose search for the current ``c`` ``ended`` move to their next ``c`` with a fresh Adam
    state; those past their last search write their best adversarial and its constant (if any) into
    ``result`` and ``constants`` and leave."""
    search = s["search"] + ended.long()
    const, lower, upper = _next_const(s["found"], s["const"], s["lower"], s["upper"], search, binary_search_steps)
    s["const"] = torch.where(ended, const, s["const"])
    s["c"] = s["const"].to(s["c"].dtype)
    s["lower"] = torch.where(ended, lower, s["lower"])
    s["upper"] = torch.where(ended, upper, s["upper"])
    s["search"] = search
    reset = ended.view((-1,) + (1,) * (s["u"].dim() - 1))
    s["u"] = torch.where(reset, s["w0"], s["u"])
    for key in ("m", "v"):
        s[key] = s[key].masked_fill(reset, 0.0)
    s["t"] = s["t"].masked_fill(ended, 0)
    s["hist"] = s["hist"].masked_fill(ended[:, None], math.inf)
    s["found"] = s["found"] & ~ended
    finished = search == binary_search_steps
    if bool(finished.any()):
        success = finished & torch.isfinite(s["best_norm"])
        result[rows[success]] = s["best_adv"][success]
        constants[rows[success]] = s["best_const"][success]
        keep = ~finished
        s, rows = {k: v[keep] for k, v in s.items()}, rows[keep]
    return s, rows
