"""The attack progress bar moves step by step (images done in fractions, an ETA and a rate), not once per
batch; the attacks see the same inputs with or without it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from advwsl.attacks import run_attack

sys.path.insert(0, str(Path(__file__).parent))
from linear_models import central_inputs, linear_model  # noqa: E402


class _Bar:
    instances: list["_Bar"] = []

    def __init__(self, *args, total=None, **kwargs):
        self.total, self.updates = total, []
        _Bar.instances.append(self)

    def update(self, n):
        self.updates.append(n)

    def close(self):
        pass


@pytest.mark.parametrize("attack, kwargs, steps", [("ddn", {"steps": 20}, 20),
                                                   ("cw", {"binary_search_steps": 2, "steps": 10}, 20)])
def test_the_bar_advances_at_every_step_of_the_attack(attack, kwargs, steps, monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    _Bar.instances.clear()
    model = linear_model(3, (3, 8, 8))
    x = central_inputs(12, (3, 8, 8))
    y = model(x).argmax(1)
    quiet = run_attack(model, x, y, attack=attack, attack_kwargs=kwargs, batch_size=6, progress=False, levels=None)
    result = run_attack(model, x, y, attack=attack, attack_kwargs=kwargs, batch_size=6, progress=True, levels=None)
    bar = _Bar.instances[-1]
    assert bar.total == 12
    assert len(bar.updates) > 2 * 4, "one update per step, not per batch"
    assert sum(bar.updates) == pytest.approx(12.0)
    assert all(u <= 6 for u in bar.updates)
    assert (result.l2 == quiet.l2).all() and (result.success == quiet.success).all()
