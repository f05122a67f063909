"""Statistics for claims on paired measurements (the same images under two attacks, or two models on the
same images), so that a finding is called "holds" only when its interval or p-value says so.

* :func:`paired_ratio_interval` — the ratio of two mean L2 norms over the same images and its paired
  percentile bootstrap interval (images resampled with replacement, both norms of an image together).
* :func:`mcnemar_exact` — the exact (binomial) McNemar test of two models' accuracies on the same images:
  only the images one model gets right and the other wrong carry information.
* :func:`holm` — Holm-Bonferroni adjustment of several p-values (a claim tested at several radii).
* :func:`verdict` — "holds", "contradicted" or "not resolved at this sample size" from those numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError

__all__ = ["RatioInterval", "paired_ratio_interval", "McNemar", "mcnemar_exact", "holm", "verdict", "HOLDS",
           "CONTRADICTED", "UNDECIDED"]

HOLDS, CONTRADICTED, UNDECIDED = "holds", "contradicted", "not resolved at this sample size"


@dataclass(frozen=True)
class RatioInterval:
    """``ratio`` = mean(a) / mean(b) over ``n`` paired images, and its ``level`` bootstrap interval."""

    ratio: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.ratio:.3f} [{self.low:.3f}, {self.high:.3f}] (n = {self.n})"


def paired_ratio_interval(a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, level: float = 0.95,
                          seed: int = 0) -> RatioInterval:
    """The ratio of the means of the paired samples ``a`` and ``b`` (same length, one entry per image) and
    its percentile bootstrap interval (``resamples`` resamplings of the images, seeded)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise InputError(f"paired samples must be two non-empty vectors of one length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or b.sum() <= 0:
        raise InputError("paired samples must be finite with a positive mean in the denominator")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    ratios = a[idx].sum(1) / np.maximum(b[idx].sum(1), np.finfo(float).tiny)
    tail = (1 - level) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return RatioInterval(float(a.sum() / b.sum()), float(low), float(high), len(a), level)


@dataclass(frozen=True)
class McNemar:
    """Two models on the same ``n`` images: ``only_a`` images right by A only, ``only_b`` by B only, and the
    exact two-sided p-value of "both are equally accurate"."""

    only_a: int
    only_b: int
    n: int
    p: float

    @property
    def difference(self) -> float:
        """Accuracy of A minus accuracy of B (a share)."""
        return (self.only_a - self.only_b) / self.n if self.n else 0.0

    def __str__(self) -> str:
        return f"{self.only_a} images vs {self.only_b}, exact McNemar p = {self.p:.3g} (n = {self.n})"


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """The exact McNemar test of the paired correctness vectors ``correct_a`` and ``correct_b``."""
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise InputError(f"paired correctness vectors must have one length, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    k = only_a + only_b
    p = 1.0 if k == 0 else float(min(1.0, 2 * stats.binom.cdf(min(only_a, only_b), k, 0.5)))
    return McNemar(only_a, only_b, int(a.size), p)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return [float(p) for p in adjusted]


def verdict(*, supports: bool, against: bool) -> str:
    """"holds" when the evidence ``supports`` the claim, "contradicted" when it goes ``against`` it (each
    already decided at the test's level), "not resolved at this sample size" otherwise."""
    if supports and not against:
        return HOLDS
    if against and not supports:
        return CONTRADICTED
    return UNDECIDED
