"""Robustness evaluation (Tables A V-5/A V-6, Figure A V-4): shard + merge equals one process bit for bit,
the sanity checks flag a gradient-masked model and pass its unmasked twin, table/curve consistency, and
bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advwsl.data.digits import sklearn_digits
from advwsl.errors import ConfigError
from advwsl.evaluation import sanity
from advwsl.evaluation.robustness import (RobustnessReport, evaluate_robustness, merge_reports, preset_budgets,
                                          parse_shard)

BUDGETS = {"cw": {"binary_search_steps": 2, "steps": 20}, "deepfool": {"steps": 20}, "ddn": {"steps": 30}}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Rounded(nn.Module):
    """Gradient masking by input quantization: forward sees round(x * k) / k, whose gradient is zero."""

    def __init__(self, net: nn.Module, k: int = 8) -> None:
        super().__init__()
        self.net, self.k = net, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * self.k) / self.k)


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(0)
    x, y = sklearn_digits(16, "train")
    xt, yt = sklearn_digits(16, "test")
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    return net, xt[:48], yt[:48]


def _evaluate(net, x, y, **kwargs):
    kwargs.setdefault("budgets", BUDGETS)
    return evaluate_robustness(net, x, y, epsilon=1.0, batch_size=8, pgd_steps=5, check_samples=12,
                               noise_draws=4, progress=False, **kwargs)


def test_shard_and_merge_equal_one_process_exactly(digits, tmp_path):
    net, x, y = digits
    x, y = x[:36], y[:36]  # 5 batches: shards of unequal size, a short last batch
    single = _evaluate(net, x, y)
    dirs = []
    for k in range(3):
        report = _evaluate(net, x, y, shard=f"{k}/3")
        assert set(np.concatenate([r.index for r in report.results.values()]) // 8 % 3) == {k}
        dirs.append(report.save(tmp_path / f"shard{k}"))
    merged = merge_reports([RobustnessReport.load(d) for d in reversed(dirs)])
    for name in single.results:
        pd.testing.assert_frame_equal(merged.results[name].to_frame(), single.results[name].to_frame(),
                                      check_exact=True)
    for eps in single.pgd:
        pd.testing.assert_frame_equal(merged.pgd[eps].to_frame(), single.pgd[eps].to_frame(), check_exact=True)
    pd.testing.assert_frame_equal(merged.more_steps.to_frame(), single.more_steps.to_frame(), check_exact=True)
    pd.testing.assert_frame_equal(merged.noise, single.noise, check_exact=True)
    pd.testing.assert_frame_equal(merged.table(), single.table(), check_exact=True)
    pd.testing.assert_frame_equal(merged.curves(), single.curves(), check_exact=True)
    assert [c.as_dict() for c in merged.checks()] == [c.as_dict() for c in single.checks()]
    # the merged report saves and reloads unchanged too
    again = RobustnessReport.load(merged.save(tmp_path / "merged"))
    pd.testing.assert_frame_equal(again.table(), single.table(), check_exact=True)


def test_merge_rejects_incomplete_or_mismatched_shards(digits, tmp_path):
    net, x, y = digits
    a = _evaluate(net, x[:16], y[:16], shard="0/2", checks=False)
    b = _evaluate(net, x[:16], y[:16], shard="1/2", checks=False, seed=5)
    with pytest.raises(ConfigError, match="every shard 0..1"):
        merge_reports([a])
    with pytest.raises(ConfigError, match="seed"):
        merge_reports([a, b])
    with pytest.raises(ConfigError, match="exactly once"):
        merge_reports([a, a])


@pytest.mark.parametrize("change, field", [
    ({"epsilon": 0.5}, "epsilon"), ({"budgets": {"ddn": {"steps": 4}}}, "budgets"), ({"seed": 3}, "seed"),
    ({"levels": None}, "levels"), ({"epsilons": (0.0, 1.0)}, "epsilons"), ({"inputs": "other"}, "inputs_sha256"),
    ({"labels": "other"}, "labels_sha256"), ({"model": "other"}, "model_sha256"), ({"checks": True}, "checks"),
])
def test_merge_refuses_shards_of_different_evaluations_naming_the_field(change, field, digits, tmp_path):
    """Shards of other runs (other weights under the same file name, other data, split or sample selection,
    another epsilon, budget, seed or lattice) are refused with the field named, saved or not."""
    net, x, y = digits
    x, y = x[:8], y[:8]
    common = {"attacks": ("ddn",), "budgets": {"ddn": {"steps": 3}}, "checks": False, "batch_size": 4,
              "epsilon": 1.0, "progress": False, "pgd_steps": 2, "check_samples": 4, "noise_draws": 2}

    def run(model, inputs, labels, **kwargs):
        return evaluate_robustness(model, inputs, labels, **{**common, **kwargs})

    first = run(net, x, y, shard="0/2")
    kwargs = {k: v for k, v in change.items() if k not in ("inputs", "labels", "model")}
    other_net = net
    if change.get("model"):  # other weights (as under the same file name)
        other_net = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    second = run(other_net, x.flip(0) if change.get("inputs") else x, (y + 1) % 10 if change.get("labels") else y,
                 shard="1/2", **kwargs)
    with pytest.raises(ConfigError, match=rf"different evaluations: their .*\({field}\) differ"):
        merge_reports([first, second])
    twin = run(net, x, y, shard="1/2")  # the matching shard merges
    assert len(merge_reports([first, twin]).results["ddn"]) == 8
    if field in ("model_sha256", "epsilon"):  # saved shards (run directories) too, named in the message
        saved = [RobustnessReport.load(r.save(tmp_path / f"s{i}")) for i, r in enumerate((first, second))]
        with pytest.raises(ConfigError, match=rf"s1 and s0 are shards of different evaluations: .*\({field}\)"):
            merge_reports(saved, names=["s0", "s1"])
        assert len(merge_reports([saved[0], RobustnessReport.load(twin.save(tmp_path / "t"))]).results["ddn"]) == 8


def test_table_curves_and_all_row_are_consistent(digits):
    net, x, y = digits
    report = _evaluate(net, x, y)
    table = report.table().set_index("attack")
    assert list(table.index) == ["C&W", "DeepFool", "DDN", "All"]
    best = report.results["All"]
    # "All" is the per-sample minimum: never worse than any attack
    for name in ("cw", "deepfool", "ddn"):
        assert (best.norms <= report.results[name].norms).all()
    assert table.loc["All", "success"] == 1.0
    curves = report.curves()
    for name, curve in curves.groupby("attack"):
        assert np.all(np.diff(curve.sort_values("epsilon")["accuracy"].to_numpy()) <= 0), name
    clean = float((net(x).argmax(1) == y).float().mean())
    assert curves[(curves.attack == "All") & (curves.epsilon == 0)]["accuracy"].item() == pytest.approx(clean)
    acc_col = table.columns[-1]
    assert table.loc["All", acc_col] <= table[acc_col].min() + 1e-9
    checks = {c.name: c for c in report.checks()}
    assert all(c.passed for c in checks.values()), report.markdown()
    assert report.warning() is None
    assert "| **All** |" in report.markdown()


def test_gradient_masked_model_is_flagged_and_named(digits):
    net, x, y = digits
    masked = Rounded(net).eval()
    with pytest.warns(sanity.GradientMaskingWarning, match="'rounded-net' looks gradient-masked"):
        report = _evaluate(masked, x[:32], y[:32], model_name="rounded-net", attacks=("ddn", "deepfool"))
        text = report.warning(emit=True)
    failed = {c.name for c in report.checks() if not c.passed}
    # zero input gradients: the attacks wander in random directions, need many more steps, or fail (the
    # unmasked twin passes every check in test_table_curves_and_all_row_are_consistent)
    assert failed & {"Gaussian noise far weaker than the attack", "unbounded attacks reach ~100% success",
                     "more steps change little"}, report.markdown()
    assert "gradient-masked" in report.markdown() and "rounded-net" in text


def test_model_in_train_mode_is_evaluated_in_eval_mode_and_restored(digits):
    net, x, y = digits
    net.train()
    try:
        from advwsl.errors import AdvwslWarning

        with pytest.warns(AdvwslWarning, match="train mode"):
            report = _evaluate(net, x[:8], y[:8], checks=False, attacks=("ddn",))
        assert net.training and all(p.requires_grad for p in net.parameters())
        assert report.results["ddn"].originally_correct.any()
    finally:
        net.eval()


def test_sanity_checks_closed_cases():
    assert not sanity.check_monotone({"a": ([0, 1, 2], [0.9, 0.5, 0.6])}).passed
    assert sanity.check_monotone({"a": ([2, 0, 1], [0.1, 0.9, 0.5])}).passed  # order of the grid is irrelevant
    assert not sanity.check_unbounded_success({"ddn": 0.5, "All": 0.8}).passed
    assert sanity.check_more_steps(np.array([1.0, 2.0, 3.0]), np.array([0.98, 1.95, 2.9])).passed
    assert not sanity.check_more_steps(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 1.5])).passed
    assert not sanity.check_more_steps(np.array([np.inf] * 3), np.array([1.0] * 3)).passed
    assert sanity.check_noise(0.05, 1.0).passed and not sanity.check_noise(0.5, 1.0).passed


def test_noise_fooled_skips_failures_and_is_seeded(digits):
    net, x, y = digits
    norms = torch.tensor([np.inf, 0.0, 50.0, 0.01] + [1.0] * 4)
    a = sanity.noise_fooled(net, x[:8], y[:8], norms, generator=torch.Generator().manual_seed(1))
    b = sanity.noise_fooled(net, x[:8], y[:8], norms, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not a[0] and not a[1] and not a[3]  # failed, misclassified, tiny noise


def test_parse_shard_and_budget():
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (0, 1)
    for bad in ("4/4", "a/b", "1", "-1/2"):
        with pytest.raises(ConfigError, match="shard"):
            parse_shard(bad)
    reference = preset_budgets(("ddn", "cw", "deepfool"))  # section A V-7
    assert reference["ddn"] == {"steps": 1000} and reference["deepfool"] == {"steps": 100}
    assert reference["cw"]["binary_search_steps"] == 9 and reference["cw"]["steps"] == 10000
    quick = preset_budgets(("ddn", "cw"), "quick")
    assert quick["ddn"] == {"steps": 100} and quick["cw"]["steps"] == 25
    with pytest.raises(ConfigError, match="preset"):
        preset_budgets(("ddn",), "slow")


def test_bad_arguments(digits, tmp_path):
    net, x, y = digits
    with pytest.raises(ConfigError, match="epsilon"):
        evaluate_robustness(net, x, y, epsilon=0.0)
    with pytest.raises(ConfigError, match="twice"):
        evaluate_robustness(net, x, y, epsilon=1.0, attacks=("ddn", "ddn"))
    with pytest.raises(Exception, match="unknown attack 'fgsm'"):
        evaluate_robustness(net, x, y, epsilon=1.0, attacks=("fgsm",))
    with pytest.raises(ConfigError, match="holds no batch"):
        _evaluate(net, x[:8], y[:8], shard="1/2", checks=False)
    report = _evaluate(net, x[:8], y[:8], checks=False, attacks=("ddn",))
    report.save(tmp_path / "r")
    with pytest.raises(ConfigError, match="already"):
        report.save(tmp_path / "r")
    with pytest.raises(ConfigError, match="no robustness evaluation"):
        RobustnessReport.load(tmp_path)
