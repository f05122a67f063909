"""The findings of the targeted tables (A V-2, A V-3): norm ratios over the (image, target) pairs both attacks
reached or over each image's worst target, with an interval that resamples images (an image's nine targets
are not independent), and the least-likely success gap by an exact McNemar test over images."""

from __future__ import annotations

import numpy as np
import pytest

from advwsl.attacks import AttackResult
from advwsl.evaluation.statistics import CONTRADICTED, HOLDS, UNDECIDED, paired_ratio_interval
from advwsl.reproduce import get_entry
from advwsl.reproduce.findings import SuccessGap, TargetedNormRatio, evaluate_findings

TARGETS = 9


def _targeted(l2: np.ndarray, success: np.ndarray, correct: np.ndarray | None = None) -> AttackResult:
    """A targeted run on ``len(l2)`` images x 9 targets: ``l2`` and ``success`` of shape (images, 9)."""
    n = l2.shape[0]
    index = np.repeat(np.arange(n), TARGETS)
    label = np.zeros(n * TARGETS, np.int64)
    target = np.tile(np.arange(1, TARGETS + 1), n)
    ok = np.ones(n, bool) if correct is None else correct
    ok = np.repeat(ok, TARGETS)
    success = success.reshape(-1) & ok
    zeros = np.zeros(n * TARGETS, np.int64)
    return AttackResult("x", "b", True, index, label, target, label.copy(), np.where(success, target, 0), ok, success,
                        l2.reshape(-1).astype(float), np.full(n * TARGETS, 9.0), zeros, zeros)


def _clustered(seed: int, n: int = 60, ratio: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    """Norms where ``a`` is about ``ratio`` x ``b``, the factor varying from image to image far more than
    between the targets of one image (an image's targets move together)."""
    rng = np.random.default_rng(seed)
    b = rng.lognormal(0.5, 0.3, size=(n, TARGETS))
    a = ratio * rng.lognormal(0, 0.1, size=(n, 1)) * b * rng.lognormal(0, 0.01, size=(n, TARGETS))
    return a, b


def test_average_ratio_is_the_pairs_ratio_with_an_interval_over_images():
    a, b = _clustered(0)
    ok = np.ones_like(a, bool)
    ok[3, 2] = False  # a pair one attack missed leaves the comparison
    rows = {("cw", "4x25"): _targeted(a, ok), ("ddn", "100"): _targeted(b, np.ones_like(b, bool))}
    v = TargetedNormRatio("c", ("cw", "4x25"), ("ddn", "100"), above=1.0).evaluate(rows)
    both = ok.reshape(-1)
    assert v.numbers["ratio"] == pytest.approx(a.reshape(-1)[both].mean() / b.reshape(-1)[both].mean())
    assert v.numbers["n"] == 60 and v.numbers["pairs"] == 60 * TARGETS - 1
    # resampling pairs as if independent would understate the uncertainty of these clustered norms
    pairs = paired_ratio_interval(a.reshape(-1)[both], b.reshape(-1)[both])
    assert v.numbers["high"] - v.numbers["low"] > 2 * (pairs.high - pairs.low)
    assert v.verdict == HOLDS


def test_verdicts_follow_the_interval():
    a, b = _clustered(1, ratio=0.8)
    ok = np.ones_like(a, bool)
    rows = {("cw", "4x25"): _targeted(a, ok), ("ddn", "100"): _targeted(b, ok)}
    assert TargetedNormRatio("c", ("cw", "4x25"), ("ddn", "100"), above=1.0).evaluate(rows).verdict == CONTRADICTED
    a, b = _clustered(2, n=4, ratio=1.0)
    rows = {("cw", "4x25"): _targeted(a, ok[:4]), ("ddn", "100"): _targeted(b, ok[:4])}
    assert TargetedNormRatio("c", ("cw", "4x25"), ("ddn", "100"), above=1.0).evaluate(rows).verdict == UNDECIDED


def test_least_likely_takes_each_images_worst_target_on_images_both_took_to_every_target():
    rng = np.random.default_rng(3)
    a, b = rng.uniform(1, 3, (40, TARGETS)), rng.uniform(1, 3, (40, TARGETS))
    ok_a = np.ones_like(a, bool)
    ok_a[5, 0] = False  # image 5 is not taken to every target by a: it leaves the least-likely comparison
    correct = np.ones(40, bool)
    correct[7] = False  # image 7 is misclassified: it is not counted at all
    rows = {("ddn", "1000"): _targeted(a, ok_a, correct), ("cw", "9x10000"): _targeted(b, np.ones_like(b, bool),
                                                                                        correct)}
    v = TargetedNormRatio("c", ("ddn", "1000"), ("cw", "9x10000"), below=1.05, scenario="least_likely").evaluate(rows)
    keep = np.setdiff1d(np.arange(40), [5, 7])
    assert v.numbers["n"] == 38
    assert v.numbers["ratio"] == pytest.approx(a[keep].max(1).sum() / b[keep].max(1).sum())


def test_success_gap_is_an_exact_mcnemar_test_over_images():
    n = 100
    ones = np.ones((n, TARGETS))
    full = np.ones((n, TARGETS), bool)
    some = full.copy()
    some[:30, 4] = False  # 30 images with one target missed: their least likely target is not reached
    rows = {("cw", "1x100"): _targeted(ones, some), ("ddn", "100"): _targeted(ones, full)}
    v = SuccessGap("c", ("cw", "1x100"), ("ddn", "100")).evaluate(rows)
    assert v.verdict == HOLDS
    assert (v.numbers["worse"], v.numbers["better"], v.numbers["only_better"]) == (0.7, 1.0, 30)
    assert v.numbers["p"] == pytest.approx(2 * 0.5 ** 30)
    reverse = {("cw", "1x100"): rows[("ddn", "100")], ("ddn", "100"): rows[("cw", "1x100")]}
    assert SuccessGap("c", ("cw", "1x100"), ("ddn", "100")).evaluate(reverse).verdict == CONTRADICTED
    few = full.copy()
    few[:2, 0] = False
    rows = {("cw", "1x100"): _targeted(ones, few), ("ddn", "100"): _targeted(ones, full)}
    assert SuccessGap("c", ("cw", "1x100"), ("ddn", "100")).evaluate(rows).verdict == UNDECIDED


def test_a_v_2_states_the_references_targeted_findings_for_mnist_only():
    claims = get_entry("A-V-2").findings
    assert len(claims) == 6 and {c.dataset for c in claims} == {"mnist"}
    assert "1.9763 / 1.9481" in claims[0].claim and "31.7 vs 100.0 %" in claims[-1].claim
    assert {c.dataset for c in get_entry("A-V-3").findings} == {"cifar10"}
    a, b = _clustered(4)
    ok = np.ones_like(a, bool)
    rows = {key: _targeted(a if key[0] == "cw" and key[1] != "9x10000" else b, ok)
            for key in [("cw", "4x25"), ("cw", "1x100"), ("cw", "9x10000"), ("ddn", "100"), ("ddn", "1000")]}
    verdicts = evaluate_findings(claims, rows, "mnist-5k")
    assert [v.verdict for v in verdicts] == [HOLDS, HOLDS, HOLDS, UNDECIDED, HOLDS, UNDECIDED]
    assert evaluate_findings(claims, rows, "cifar10") == []
