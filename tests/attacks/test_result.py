"""AttackResult aggregates (Tables A V-1 to A V-6), robustness curves, All row, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from advwsl.errors import ConfigError, InputError
from advwsl.attacks.result import AttackResult, combine_results, load_result, results_table


def make(l2, success, correct=None, *, targeted=False, index=None, target=None, attack="DDN", seconds=1.5):
    n = len(l2)
    correct = np.ones(n, bool) if correct is None else np.asarray(correct)
    index = np.arange(n) if index is None else np.asarray(index)
    return AttackResult(attack=attack, budget="100", targeted=targeted, index=index,
                        label=np.zeros(n, int), target=np.full(n, -1) if target is None else np.asarray(target),
                        clean_pred=np.where(correct, 0, 1), adv_pred=np.where(success, 1, 0),
                        originally_correct=correct, success=np.asarray(success) & correct, l2=np.asarray(l2, float),
                        gray_l2=np.full(n, 10.0), n_forward=np.full(n, 101), n_backward=np.full(n, 100),
                        seconds=seconds)


def test_table_a_v_1_aggregates():
    r = make([1.0, 2.0, 0.0, 0.0, 3.0], [True, True, False, False, True], [True, True, True, False, True])
    s = r.summary()
    assert s["clean_accuracy"] == pytest.approx(0.8)
    assert s["success"] == pytest.approx(0.75)  # over the 4 originally-correct samples
    assert s["mean_l2"] == pytest.approx(2.0)  # successes only
    assert s["median_l2"] == pytest.approx(2.5)  # [1, 2, 10 (failure -> gray), 3]
    assert s["grads_per_sample"] == 100 and s["seconds"] == 1.5


def test_robustness_curve():
    r = make([1.0, 2.0, 0.0, 0.0, 3.0], [True, True, False, False, True], [True, True, True, False, True])
    assert r.accuracy(0.0) == pytest.approx(0.8)  # clean accuracy
    eps = np.linspace(0, 5, 51)
    acc = r.accuracy(eps)
    assert np.all(np.diff(acc) <= 0)
    assert r.accuracy(1.5) == pytest.approx(0.6)  # 2.0, 3.0 and the failure survive
    assert r.accuracy(100.0) == pytest.approx(0.2)  # the failed attack counts as robust
    curve = r.robustness_curve()
    assert list(curve.columns) == ["epsilon", "accuracy"] and curve["accuracy"].is_monotonic_decreasing


def test_targeted_average_and_least_likely():
    # two images, two targets each
    r = make([1.0, 3.0, 2.0, 0.5], [True, True, True, False], targeted=True, index=[0, 0, 1, 1],
             target=[1, 2, 1, 2])
    s = r.summary()
    assert s["average"]["success"] == pytest.approx(0.75)
    assert s["average"]["mean_l2"] == pytest.approx(2.0)
    assert s["least_likely"]["success"] == pytest.approx(0.5)  # image 1 failed on one target
    assert s["least_likely"]["mean_l2"] == pytest.approx(3.0)
    assert "Least likely" in results_table([r])


def test_all_row_takes_the_smallest_success_per_sample():
    a = make([1.0, 2.0, 0.0], [True, True, False], attack="DDN")
    b = make([1.5, 1.0, 4.0], [True, True, True], attack="C&W")
    both = combine_results([a, b])
    assert both.attack == "All"
    np.testing.assert_allclose(both.l2, [1.0, 1.0, 4.0])
    assert both.success.all() and both.seconds == 3.0 and (both.n_backward == 200).all()
    with pytest.raises(InputError, match="other samples"):
        combine_results([a, make([1.0], [True])])


def test_save_load_roundtrip_and_no_overwrite(tmp_path):
    r = make([1.0, 2.0, 0.0], [True, True, False], [True, True, False])
    paths = r.save(tmp_path, "ddn")
    assert {p.name for p in paths.values()} == {"ddn.csv", "ddn.json", "ddn.md"}
    back = load_result(tmp_path / "ddn")
    assert back.to_frame().equals(r.to_frame())
    assert back.summary() == r.summary()
    assert "| DDN | 100 |" in paths["md"].read_text()
    with pytest.raises(ConfigError, match="already exists"):
        r.save(tmp_path, "ddn")
    with pytest.raises(ConfigError, match="not found"):
        load_result(tmp_path / "missing")


def test_column_length_checked():
    with pytest.raises(InputError, match="shape"):
        AttackResult(attack="x", budget="1", targeted=False, index=np.arange(3), label=np.zeros(2, int),
                     target=np.zeros(3, int), clean_pred=np.zeros(3, int), adv_pred=np.zeros(3, int),
                     originally_correct=np.ones(3, bool), success=np.ones(3, bool), l2=np.ones(3),
                     gray_l2=np.ones(3), n_forward=np.ones(3, int), n_backward=np.ones(3, int))
