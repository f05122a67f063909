"""Sanity checks of a robustness evaluation, from the robustness-evaluation literature (Athalye, Carlini &
Wagner 2018 on obfuscated gradients, cited in section A V-3; Carlini et al. 2019's checklist):

* accuracy is non-increasing in epsilon (minimal-norm curves, and a budget attack run at several radii);
* unbounded attacks reach (nearly) 100 % success (section A V-7: "attacks with unbounded norm ... can
  successfully generate adversarial examples almost 100 % of the time");
* more attack steps do not change the result much;
* Gaussian noise of the same norm as the adversarial perturbation is far weaker than the attack;
* the clean accuracy is above chance (the share of the most frequent class): a model at chance has no
  robustness to measure, and every other check passes on it vacuously.

A model that fails them looks gradient-masked: its reported robustness is likely an artifact of the
attacks' gradients, not of the model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..utils import frozen


@dataclass(frozen=True)
class SanityCheck:
    """One check: its ``name``, whether it ``passed``, the measured ``value`` against ``threshold``, and a
    sentence saying what was measured."""

    name: str
    passed: bool
    value: float
    threshold: float
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "value": self.value, "threshold": self.threshold,
                "message": self.message}


class GradientMaskingWarning(UserWarning):
    """Robustness results that look like gradient masking rather than robustness."""


# ---------------------------------------------------------------- per-batch measurements (sharded)


def noise_fooled(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor, *,
                 draws: int = 8, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each sample, whether any of ``draws`` Gaussian perturbations rescaled to L2 norm ``norms[i]``
    (and clamped to [0, 1]) changes a correct prediction. Samples with a non-finite or zero norm (attack
    failed, or already misclassified) get False."""
    n = inputs.shape[0]
    fooled = torch.zeros(n, dtype=torch.bool, device=inputs.device)
    norms = norms.to(inputs.device, inputs.dtype)
    active = torch.isfinite(norms) & (norms > 0)
    if not bool(active.any()):
        return fooled
    x, y, r = inputs[active], labels[active].to(inputs.device), norms[active]
    view = (-1,) + (1,) * (x.dim() - 1)
    hit = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    with frozen(model), torch.no_grad():
        for _ in range(draws):
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
            noise = noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(view) * r.view(view)
            hit |= model((x + noise).clamp(0, 1)).argmax(1) != y
    fooled[active] = hit
    return fooled


# ---------------------------------------------------------------- checks on the merged per-sample table


def check_monotone(curves: dict[str, tuple[Sequence[float], Sequence[float]]]) -> SanityCheck:
    """Accuracy must not increase with epsilon: ``curves`` maps a label to ``(epsilons, accuracies)``; the
    value is the largest increase found (0 when monotone)."""
    worst, where = 0.0, ""
    for label, (eps, acc) in curves.items():
        order = np.argsort(np.asarray(eps, dtype=float), kind="stable")
        a = np.asarray(acc, dtype=float)[order]
        rise = float(np.max(np.diff(a), initial=0.0))
        if rise > worst:
            worst, where = rise, label
    passed = worst <= 1e-12
    msg = ("accuracy is non-increasing in epsilon for every attack" if passed else
           f"accuracy increases by {100 * worst:.1f} points with epsilon for {where}: the attack misses "
           "adversarials it found at smaller radii")
    return SanityCheck("accuracy non-increasing in epsilon", passed, worst, 0.0, msg)


def check_unbounded_success(success: dict[str, float], *, threshold: float = 0.99) -> SanityCheck:
    """The per-sample best of the unbounded attacks (``success["All"]``, a share in [0, 1]) should be
    near 100 %; the message lists every attack's rate."""
    best = success.get("All", max(success.values(), default=0.0))
    rates = ", ".join(f"{k} {100 * v:.1f}%" for k, v in success.items())
    passed = best >= threshold
    msg = (f"unbounded attacks succeed on {100 * best:.1f}% of correctly classified samples ({rates})"
           + ("" if passed else f"; below {100 * threshold:.0f}%: the attacks' gradients do not lead anywhere"))
    return SanityCheck("unbounded attacks reach ~100% success", passed, best, threshold, msg)


def check_more_steps(base_l2: np.ndarray, more_l2: np.ndarray, *, label: str = "ddn",
                     tolerance: float = 0.1) -> SanityCheck:
    """Rerunning an attack with more steps on the same samples should barely change the median L2 (minimal
    norms, ``inf`` for failures): the value is the relative decrease of the median."""
    base, more = np.asarray(base_l2, float), np.asarray(more_l2, float)
    if base.size == 0:
        return SanityCheck("more steps change little", True, 0.0, tolerance, "no sample to compare")
    mb, mm = float(np.median(base)), float(np.median(more))
    change = 0.0 if mb == mm else (1.0 if not np.isfinite(mb) else (mb - mm) / mb if mb > 0 else 0.0)
    passed = change <= tolerance
    msg = (f"{label} steps: median L2 {mb:.4g} -> {mm:.4g} on {base.size} samples "
           f"({100 * change:+.1f}% lower)" + ("" if passed else f", more than {100 * tolerance:.0f}%: the "
                                                               "evaluation budget has not converged"))
    return SanityCheck("more steps change little", passed, change, tolerance, msg)


def check_noise(noise_rate: float, attack_rate: float, *, ratio: float = 0.2) -> SanityCheck:
    """Gaussian noise with the norm of each sample's smallest adversarial perturbation should fool far
    fewer samples than the attack: passes when ``noise_rate <= ratio * attack_rate``."""
    threshold = ratio * attack_rate
    passed = noise_rate <= threshold
    msg = (f"Gaussian noise of the adversarial norm fools {100 * noise_rate:.1f}% of samples vs "
           f"{100 * attack_rate:.1f}% for the attacks" + ("" if passed else
                                                          ": the attacks do no better than random directions"))
    return SanityCheck("Gaussian noise far weaker than the attack", passed, noise_rate, threshold, msg)


def check_above_chance(labels: np.ndarray, correct: np.ndarray) -> SanityCheck:
    """The clean accuracy must be above the majority-class rate: passes when the one-sided exact binomial test
    of ``correct`` against that rate gives p < 0.05."""
    from scipy import stats

    labels, correct = np.asarray(labels), np.asarray(correct, bool)
    n = len(labels)
    chance = float(np.bincount(labels.astype(int)).max() / n) if n else 1.0
    p = float(stats.binomtest(int(correct.sum()), n, chance, alternative="greater").pvalue) if n and chance < 1 \
        else 1.0
    passed = p < 0.05
    msg = (f"clean accuracy {100 * correct.mean():.1f}% on {n} images against {100 * chance:.1f}% for always "
           f"predicting the most frequent class (p = {p:.2g})" + ("" if passed else ": the model is at chance level, "
                                                                   "there is no robustness to measure"))
    return SanityCheck("clean accuracy above chance", passed, float(correct.mean()) if n else 0.0, chance, msg)


def masking_warning(model_name: str, checks: Sequence[SanityCheck], *, emit: bool = True) -> str | None:
    """A warning naming ``model_name`` when any check failed (emitted as :class:`GradientMaskingWarning`
    when ``emit``); None when all passed."""
    failed = [c for c in checks if not c.passed]
    if not failed:
        return None
    text = (f"model {model_name!r} looks gradient-masked (or under-attacked); its robustness numbers are not "
            "trustworthy: "
            + "; ".join(c.message for c in failed)
            + ". Try more attack steps, gradient-free or BPDA attacks, or remove non-differentiable input processing.")
    if emit:
        warnings.warn(text, GradientMaskingWarning, stacklevel=2)
    return text
