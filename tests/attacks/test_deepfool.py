"""Native DeepFool: the closed form on linear models (all classes and top-k), agreement with foolbox on a
trained CNN, one forward pass per step on the samples not yet adversarial."""

from __future__ import annotations

import pytest
import torch

from advwsl.attacks import deepfool
from counting import Counting
from linear_models import central_inputs, l2, linear_model


def _linear_distances(model, x, y, classes):
    """Distance from each input to the boundary between ``y`` and each of ``classes`` (N, K)."""
    w = model[1].weight.detach()
    with torch.no_grad():
        z = model(x)
    gaps = z.gather(1, y[:, None]) - z.gather(1, classes)
    return gaps / (w[classes] - w[y][:, None]).norm(dim=2)


@pytest.mark.parametrize("candidates", [None, 10, 3, 2])
def test_linear_model_one_step_to_the_nearest_candidate_boundary(candidates):
    """On a linear model the first step is exact: the norm is (1 + overshoot)(d + 1e-4), d the distance to
    the nearest boundary among the top ``candidates`` classes of the clean logits."""
    model = linear_model(10, (3, 6, 6), scale=0.1)
    x = central_inputs(8, (3, 6, 6))
    with torch.no_grad():
        ranked = model(x).argsort(1, descending=True)
    y = ranked[:, 0]
    k = 10 if candidates is None else candidates
    d = _linear_distances(model, x, y, ranked[:, 1:k]).min(1).values
    counted = Counting(model)
    adv = deepfool(counted, x, y, candidates=candidates)
    assert bool((model(adv).argmax(1) != y).all())
    assert torch.allclose(l2(adv, x), 1.02 * (d + 1e-4), rtol=1e-4)
    assert counted.calls == 3  # clean check, the step's linearization, the adversarial check


def test_agrees_with_foolbox_on_a_trained_cnn(digits):
    model, x, y = digits
    ours = deepfool(model, x, y)
    theirs = deepfool(model, x, y, backend="foolbox")
    with torch.no_grad():
        assert torch.equal(model(ours).argmax(1) != y, model(theirs).argmax(1) != y)
    ratio = l2(ours, x) / l2(theirs, x)
    assert abs(float(l2(ours, x).median() / l2(theirs, x).median()) - 1) <= 0.01
    assert float((ratio - 1).abs().quantile(0.9)) <= 0.01  # same algorithm: per sample too


def test_done_samples_leave_the_batch(digits):
    model, x, y = digits
    ours, theirs = Counting(model), Counting(model)
    deepfool(ours, x, y)
    deepfool(theirs, x, y, backend="foolbox")
    # foolbox forwards the whole batch once per candidate per step until every sample is done
    assert ours.rows * 3 < theirs.rows
    # one forward per step: the calls are the clean check plus at most steps + 1
    assert ours.calls <= 2 + 50


def test_failures_after_the_last_step_come_back_as_the_input(digits):
    model, x, y = digits
    for overshoot in (0.0, 0.02):
        adv = deepfool(model, x, y, steps=1, overshoot=overshoot)
        with torch.no_grad():
            success = model(adv).argmax(1) != y
        assert not bool(success.all())  # one step falls short for some samples
        assert torch.equal(adv[~success], x[~success])
