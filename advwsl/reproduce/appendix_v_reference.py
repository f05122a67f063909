"""The reference's numbers of Tables A V-1 to A V-6 (the DDN paper) as rows of dicts, per dataset: the
appendix V entries (:mod:`advwsl.reproduce.appendix_v`) print ours beside them."""

from __future__ import annotations

from typing import Any

__all__ = ["A_V_1", "A_V_2", "A_V_3", "A_V_4", "A_V_5", "A_V_6"]


def _ref(dataset: str, keys: list[tuple[str, str]], values: list[tuple], columns: tuple[str, ...]
         ) -> list[dict[str, Any]]:
    """The reference's rows of ``dataset``: each key (the two first ``columns``) with its values (the others)."""
    return [{"dataset": dataset, **dict(zip(columns, (*key, *value)))} for key, value in zip(keys, values, strict=True)]


#: The rows of Table A V-1 (untargeted), and of Tables A V-2 to A V-4 (targeted: no DeepFool).
_BUDGETS = [("C&W", "4x25"), ("C&W", "1x100"), ("C&W", "9x10000"), ("DeepFool", "100"), ("DDN", "100"),
            ("DDN", "300"), ("DDN", "1000")]
_TARGETED_BUDGETS = [key for key in _BUDGETS if key[0] != "DeepFool"]
_A_V_1_COLUMNS = ("attack", "budget", "success", "mean_l2", "median_l2", "grads", "seconds")
A_V_1 = (
    _ref("mnist", _BUDGETS, [(100.0, 1.7382, 1.7400, 100, 1.7), (99.4, 1.5917, 1.6405, 100, 1.7),
                             (100.0, 1.3961, 1.4121, 54007, 856.8), (75.4, 1.9685, 2.2909, 98, None),
                             (100.0, 1.4563, 1.4506, 100, 1.5), (100.0, 1.4357, 1.4386, 300, 4.5),
                             (100.0, 1.4240, 1.4342, 1000, 14.9)], _A_V_1_COLUMNS)
    + _ref("cifar10", _BUDGETS, [(100.0, 0.1924, 0.1541, 60, 3.0), (99.8, 0.1728, 0.1620, 91, 4.6),
                                 (100.0, 0.1543, 0.1453, 36009, 1793.2), (99.7, 0.1796, 0.1497, 25, None),
                                 (100.0, 0.1503, 0.1333, 100, 4.7), (100.0, 0.1487, 0.1322, 300, 14.2),
                                 (100.0, 0.1480, 0.1317, 1000, 47.6)], _A_V_1_COLUMNS)
    + _ref("imagenet", _BUDGETS, [(100.0, 1.5812, 1.3382, 63, 379.3), (100.0, 0.9858, 0.9587, 48, 287.1),
                                  (100.0, 0.4692, 0.3980, 21309, 127755.6), (98.5, 0.3800, 0.2655, 41, None),
                                  (99.6, 0.3831, 0.3227, 100, 593.6), (100.0, 0.3749, 0.3210, 300, 1779.4),
                                  (100.0, 0.3617, 0.3188, 1000, 5933.6)], _A_V_1_COLUMNS))
_T_COLUMNS = ("attack", "budget", "avg_success", "avg_mean_l2", "ll_success", "ll_mean_l2")
A_V_2 = _ref("mnist", _TARGETED_BUDGETS, [(96.11, 2.8254, 69.9, 5.0090), (86.89, 2.0940, 31.7, 2.6062),
                                          (100.0, 1.9481, 100.0, 2.5370), (100.0, 1.9763, 100.0, 2.6008),
                                          (100.0, 1.9577, 100.0, 2.5503), (100.0, 1.9511, 100.0, 2.5348)], _T_COLUMNS)
A_V_3 = _ref("cifar10", _TARGETED_BUDGETS, [(99.78, 0.3247, 98.7, 0.5060), (99.32, 0.3104, 95.8, 0.4159),
                                            (100.0, 0.2798, 100.0, 0.3905), (100.0, 0.2925, 100.0, 0.4170),
                                            (100.0, 0.2887, 100.0, 0.4090), (100.0, 0.2867, 100.0, 0.4050)],
             _T_COLUMNS)
A_V_4 = _ref("imagenet", _TARGETED_BUDGETS, [(99.13, 4.2826, 80.6, 8.7336), (96.74, 1.7718, 66.2, 2.2997),
                                             (100.0, 0.96, 100.0, 2.22), (99.98, 1.0260, 99.5, 1.7074),
                                             (100.0, 0.9021, 100.0, 1.3634), (100.0, 0.8444, 100.0, 1.2240)],
             _T_COLUMNS)
#: The rows of Tables A V-5 / A V-6: each defense under each attack and their per-sample best.
_DEFENSES = [(defense, attack) for defense in ("Baseline", "Madry", "Ours")
             for attack in ("C&W 9x10000", "DeepFool 100", "DDN 1000", "All")]
_D_COLUMNS = ("defense", "attack", "success", "mean_l2", "median_l2", "accuracy")
A_V_5 = _ref("mnist", _DEFENSES, [
    (100.0, 1.3961, 1.4121, 42.1), (75.4, 1.9685, 2.2909, 81.8),
    (100.0, 1.4240, 1.4342, 45.2), (100.0, 1.3778, 1.3946, 40.8),
    (100.0, 2.0813, 2.1071, 73.0), (91.6, 4.9585, 5.2946, 93.1),
    (99.6, 1.8436, 1.8994, 69.9), (100.0, 1.6917, 1.8307, 67.3),
    (100.0, 2.5181, 2.6146, 88.0), (94.3, 3.9449, 4.1754, 92.7),
    (100.0, 2.4874, 2.5781, 87.6), (100.0, 2.4497, 2.5538, 87.2)], _D_COLUMNS)
A_V_6 = _ref("cifar10", _DEFENSES, [
    (100.0, 0.1343, 0.1273, 0.2), (99.3, 0.5085, 0.4241, 38.3),
    (100.0, 0.1430, 0.1370, 0.1), (100.0, 0.1282, 0.1222, 0.1),
    (100.0, 0.6912, 0.6050, 57.1), (95.6, 1.4856, 0.9576, 64.7),
    (100.0, 0.6732, 0.5876, 56.9), (100.0, 0.6601, 0.5804, 56.1),
    (100.0, 0.8860, 0.8254, 67.9), (99.7, 1.5298, 1.1163, 69.9),
    (100.0, 0.8688, 0.8177, 68.0), (100.0, 0.8597, 0.8151, 67.6)], _D_COLUMNS)
