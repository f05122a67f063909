"""A row of an attack table run on fewer images (C&W 9x10000) gets a "same images" column: every row's mean
L2 on that row's images, over the images both made adversarial; one column per such row."""

from __future__ import annotations

import numpy as np
import pytest

from advwsl.attacks import AttackResult
from advwsl.reproduce.appendix_v import _fewer
from advwsl.reproduce.findings import same_images_l2


def _result(l2, success, attack="ddn"):
    n = len(l2)
    z = np.zeros(n, dtype=np.int64)
    return AttackResult(attack=attack, budget="1", targeted=False, seconds=0.0, levels=None, bounds=(0.0, 1.0),
                        params={}, index=np.arange(n), label=z, target=z - 1, clean_pred=z, adv_pred=z + 1,
                        originally_correct=np.ones(n, bool), success=np.array(success), l2=np.array(l2, float),
                        gray_l2=np.full(n, 10.0), n_forward=z, n_backward=z)


def test_every_row_is_compared_on_the_images_of_each_smaller_row():
    full = _result([1.0, 2.0, 3.0, 4.0], [True, True, False, True])
    small = _result([1.5, 1.0], [True, True], "cw")
    smaller = _result([0.5], [True], "cw")
    rows = {("ddn", "100"): full, ("cw", "9x10000"): small, ("cw", "1x100"): smaller}
    assert list(_fewer(rows)) == [("cw", "9x10000"), ("cw", "1x100")]
    assert same_images_l2(small, full) == pytest.approx(1.5)  # images 0 and 1
    assert same_images_l2(small, small) == pytest.approx(1.25)
    assert same_images_l2(smaller, full) == pytest.approx(1.0)
    assert np.isnan(same_images_l2(_result([1.0], [False], "cw"), full))  # nothing both made adversarial
    assert _fewer({("ddn", "100"): full, ("cw", "4x25"): full}) == {}
