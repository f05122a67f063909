"""Native DeepFool: the closed form on linear models (all classes and top-k), agreement with foolbox on a
trained CNN, one forward pass per step on the samples not yet adversarial; deepfool-fb1 (foolbox 1.x's
variant): its overshoot and per-step clipping in closed form, agreement with a one-sample reimplementation;
both: what rounding to 8 bits does to their adversarials."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from advwsl.attacks import counting, deepfool, get_attack_spec, quantize
from advwsl.attacks.deepfool import deepfool_fb1
from advwsl.errors import InputError
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
    assert counted.calls == 2  # the clean pass (also the step's linearization), the adversarial check


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


def test_prune_takes_deepfool_steps_on_a_linear_model():
    """A linear model's gradients never change, so estimating a candidate's distance with its last gradient
    norm is exact: even ``prune=1`` (one candidate's gradient per step after the first) takes the same
    steps. The inputs fill the box, so the steps are clipped and take several iterations."""
    model = linear_model(10, (3, 6, 6), scale=0.3)
    x = torch.rand(16, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model(x).argmax(1)
    exact, pruned = counting(model), counting(model)
    reference = deepfool(exact, x, y)
    assert torch.equal(deepfool(pruned, x, y, prune=1.0), reference)
    assert exact.forwards > 3 and pruned.backwards < exact.backwards


def test_prune_keeps_the_steps_on_a_trained_cnn(digits):
    model, x, y = digits
    exact, pruned = counting(model), counting(model)
    reference = deepfool(exact, x, y)
    assert torch.equal(deepfool(pruned, x, y, prune=3.0), reference)
    assert pruned.backwards < exact.backwards


@pytest.mark.parametrize("prune, backend, message", [
    (0.5, "native", "prune must be None or a number >= 1"), (float("nan"), "native", "prune must be"),
    (True, "native", "prune must be"), (3.0, "foolbox", "option of the native backend")])
def test_bad_prune(prune, backend, message):
    x, y = central_inputs(2, (4,)), torch.zeros(2, dtype=torch.long)
    with pytest.raises(InputError, match=message):
        deepfool(linear_model(3, (4,)), x, y, prune=prune, backend=backend)


# --- deepfool-fb1: foolbox 1.x's DeepFoolL2Attack, as the reference ran it ----------------------------------


def _fb1_one_sample(model, x, label, steps, subsample=10):
    """foolbox 1.x's DeepFoolL2Attack on one image, written from its description: per step, the
    cross-entropy loss of the label and its gradient, then the loss and gradient of every top-``subsample``
    class (ranked on the clean image) whose logit is below the label's; the nearest linearized boundary
    gives ``x <- clip(x + 1.05 |dl| / (||dg|| + 1e-8)^2 (-dg))``; stop at the first adversarial point."""
    def loss_and_grad(point, k):
        point = point.detach().requires_grad_(True)
        logits = model(point[None])[0]
        ce = torch.nn.functional.cross_entropy(logits[None], torch.tensor([k]))
        return logits.detach(), -ce.detach(), torch.autograd.grad(ce, point)[0]

    with torch.no_grad():
        ranked = model(x[None])[0].argsort(descending=True)[:subsample].tolist()
    point = x
    for _ in range(steps):
        logits, loss, grad = loss_and_grad(point, label)
        if int(logits.argmax()) != label:
            return point
        best = None
        for k in (k for k in ranked if logits[k] < logits[label]):
            _, loss_k, grad_k = loss_and_grad(point, k)
            dl, dg = loss_k - loss, grad_k - grad
            distance = dl.abs() / (dg.norm() + 1e-8)
            if best is None or distance < best[0]:
                best = (distance, dl, dg)
        _, dl, dg = best
        point = (point + 1.05 * dl.abs() / (dg.norm() + 1e-8) ** 2 * (-dg)).clamp(0, 1)
    with torch.no_grad():
        return point if int(model(point[None])[0].argmax()) != label else x


def test_fb1_is_registered_untargeted():
    spec = get_attack_spec("deepfool-fb1")
    assert spec.fn is deepfool_fb1 and not spec.targeted and spec.kwargs(None) == {"steps": 100}
    with pytest.raises(InputError, match="untargeted"):
        deepfool_fb1(linear_model(2, (4,)), torch.rand(2, 4), torch.zeros(2, dtype=torch.long), targeted=True)


def _margin(model, x, y):
    """``max_{j != y} z_j - z_y`` (positive: adversarial)."""
    with torch.no_grad():
        z = model(x)
    return z.scatter(1, y[:, None], -math.inf).amax(1) - z.gather(1, y[:, None])[:, 0]


def test_fb1_agrees_with_a_one_sample_reimplementation(digits):
    """In float64, the same points per sample over the first steps. Later, iterates creeping up to a boundary
    (see the clipping test) get there at rounding size, where rounding decides whether they count as
    adversarial, and near-ties between candidate boundaries are broken by rounding; from there the two paths
    part (1.05 per step amplifies it). So over 30 steps: most samples identical, every result either the
    input or adversarial, and the successes counted alike to one sample."""
    model, x, y = digits
    model, x, y = copy.deepcopy(model).double(), x[:24].double(), y[:24]

    def both(steps):
        theirs = torch.stack([_fb1_one_sample(model, xi, int(yi), steps) for xi, yi in zip(x, y)])
        return deepfool_fb1(model, x, y, steps=steps), theirs

    ours, theirs = both(5)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-12) and not torch.equal(ours, x)
    ours, theirs = both(30)
    same = (ours - theirs).flatten(1).abs().amax(1) <= 1e-9
    assert float(same.float().mean()) >= 0.75
    successes = []
    for adv in (ours, theirs):
        unchanged = (adv == x).flatten(1).all(1)
        adversarial = _margin(model, adv, y) >= -1e-12  # on a boundary, batch size decides by rounding
        assert bool((unchanged | adversarial).all())
        successes.append(int((~unchanged).sum()))
    assert abs(successes[0] - successes[1]) <= 1


def test_fb1_overshoots_each_step_by_five_percent_without_padding():
    """Inside the box, a linear model is fooled in one step of exactly 1.05 times the distance to the
    nearest candidate boundary (native DeepFool: 1.02 (d + 1e-4))."""
    model = linear_model(10, (3, 6, 6), scale=0.1)
    x = central_inputs(8, (3, 6, 6))
    with torch.no_grad():
        ranked = model(x).argsort(1, descending=True)
    y = ranked[:, 0]
    d = _linear_distances(model, x, y, ranked[:, 1:10]).min(1).values
    counted = Counting(model)
    adv = deepfool_fb1(counted, x, y)
    assert bool((model(adv).argmax(1) != y).all())
    assert torch.allclose(l2(adv, x), 1.05 * d, rtol=1e-4)
    assert counted.calls == 2


def _half_clipped(free_share: float, n: int = 6, dtype: torch.dtype = torch.float32):
    """A binary linear model on 20 pixels and ``n`` inputs of class 0 at logit gaps 0.05..0.3: pixels 0-9 at 0
    with a negative weight (each step pushes them out of the box), pixels 10-19 inside with positive weight
    carrying ``free_share`` of ``||w||^2``."""
    a, c = (1 - free_share) ** 0.5, free_share ** 0.5
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(20, 2)).eval()
    w = torch.cat([torch.full((10,), -a), torch.full((10,), c)])
    model[1].weight.data = torch.stack([torch.zeros(20), w])
    gaps = torch.linspace(0.05, 0.3, n)
    x = torch.cat([torch.zeros(n, 10), torch.full((n, 10), 0.5)], 1)
    model[1].bias.data = torch.tensor([0.0, -float(w @ x[0])])
    x[:, 10:] -= (gaps / (10 * c))[:, None]  # z_1 - z_0 = -gap
    return model.to(dtype), x.to(dtype), torch.zeros(n, dtype=torch.long), gaps.to(dtype), w.to(dtype)


def test_fb1_clips_each_step_and_can_stall_where_native_deepfool_does_not():
    """Clipped every step, a step only closes ``1.05 s`` of the gap (s: the share of ``||w||^2`` on the
    pixels free to move): below ``s = 1 / 1.05`` the gap shrinks geometrically and is never closed (float64,
    20 steps: the gap is still 1e-8 of what it was); above, one step crosses, clipped."""
    model, x, y, gaps, w = _half_clipped(0.5, dtype=torch.float64)
    assert torch.equal(deepfool_fb1(model, x, y, steps=20), x)  # no adversarial found: the inputs
    native = deepfool(model, x, y, steps=20)
    assert bool((model(native).argmax(1) != y).all())  # the accumulated step and its 1e-4 get across
    model, x, y, gaps, w = _half_clipped(0.97)
    adv = deepfool_fb1(model, x, y, steps=1)
    assert bool((model(adv).argmax(1) != y).all()) and bool((adv >= 0).all())
    # one step, clipped: only the free pixels moved, by 1.05 gap / ||w||^2 w
    assert torch.allclose(l2(adv, x), 1.05 * gaps * w[10:].norm() / w.norm() ** 2, rtol=1e-4)


@pytest.mark.parametrize("attack", [deepfool, deepfool_fb1])
def test_rounding_to_8_bits_undoes_many_deepfool_adversarials(digits, attack):
    """DeepFool stops at its first adversarial iterate, a sliver past the boundary: rounded to the nearest
    8-bit values, many fall back. This fits Table A V-1's 75.4 % for foolbox 1.x's DeepFool: on the mnist-5k
    C&W network (1,000 digits) deepfool-fb1 succeeds on 99.8 % in float and 68.0 % once rounded, advwsl's
    DeepFool on 100 % and 56.5 %."""
    model, x, y = digits
    x = quantize(x, 256)
    adv = attack(model, x, y, steps=100)
    with torch.no_grad():
        assert bool((model(x).argmax(1) == y).all())
        assert bool((model(adv).argmax(1) != y).all())
        assert float((model(quantize(adv, 256)).argmax(1) != y).float().mean()) < 0.9
