"""Size supervision (eq. 4.7-4.13) and the Jia et al. baseline (eq. 4.1-4.3)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy as sp_entropy

from advwsl.errors import ConfigError, InputError, ModelError
from advwsl.losses import (ImageLabelLoss, JiaLoss, SizeSupervisedLoss, add_size_noise, build_criterion, entropy_loss,
                           jia_probability, jia_size_penalty, kl_size_loss, l2_size_loss, normalized_cams,
                           per_image_noise, predicted_sizes, size_targets)


def test_predicted_sizes_eq_4_7():
    g = torch.Generator().manual_seed(0)
    cams = torch.randn(3, 2, 4, 4, generator=g)
    m_hat = normalized_cams(cams, (16, 16))
    assert m_hat.shape == (3, 3, 16, 16)
    up = F.interpolate(cams, size=(16, 16), mode="bilinear", align_corners=False)
    expected = torch.softmax(torch.cat([torch.zeros_like(up[:, :1]), up], 1), 1).mean((2, 3))
    nu = predicted_sizes(m_hat)
    assert torch.allclose(nu, expected, atol=1e-6)
    assert torch.allclose(nu.sum(1), torch.ones(3), atol=1e-6)
    # a CAM far above the background everywhere claims the whole image
    assert predicted_sizes(normalized_cams(torch.full((1, 1, 2, 2), 30.0), 8))[0, 1].item() == pytest.approx(1.0)
    sig = normalized_cams(cams, 8, normalization="sigmoid", background=False)
    assert torch.allclose(sig, torch.sigmoid(F.interpolate(cams, size=(8, 8), mode="bilinear")))


def test_size_targets_and_noise():
    masks = torch.zeros(3, 10, 10)
    masks[0, :3] = 1  # 30 %
    masks[2, :5] = 1  # 50 %
    labels = torch.tensor([1, 0, 2])
    a = size_targets(masks, labels, 3)
    assert torch.allclose(a, torch.tensor([[0.7, 0, 0.3, 0], [1, 0, 0, 0], [0.5, 0, 0, 0.5]]))
    noisy = add_size_noise(a, labels, noise=torch.tensor([0.1, 0.2, -0.9]))
    assert torch.allclose(noisy, torch.tensor([[0.6, 0, 0.4, 0], [0.8, 0.2, 0, 0], [1.0, 0, 0, 0.0]]))
    random = add_size_noise(a, labels, 0.3, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(random.sum(1), torch.ones(3)) and (random >= 0).all() and (random <= 1).all()
    assert add_size_noise(a, labels, 0.0) is a
    z1 = per_image_noise(torch.tensor([5, 9, 5]), 0.1, seed=3)
    assert z1[0] == z1[2] and z1[0] != z1[1]  # a function of (seed, index) only
    assert torch.equal(z1, per_image_noise(torch.tensor([5, 9, 5]), 0.1, seed=3))


def test_kl_l2_entropy_closed_forms():
    a = torch.tensor([[0.7, 0.0, 0.3], [0.2, 0.5, 0.3]])
    nu = torch.tensor([[0.5, 0.2, 0.3], [0.2, 0.5, 0.3]])
    assert kl_size_loss(nu, a)[0].item() == pytest.approx(sp_entropy(a[0], nu[0]), abs=1e-6)
    assert kl_size_loss(nu, a)[1].item() == pytest.approx(0.0, abs=1e-7)
    assert l2_size_loss(nu, a).tolist() == pytest.approx([0.08, 0.0])
    uniform = torch.full((1, 4, 3, 3), 0.25)
    assert entropy_loss(uniform).item() == pytest.approx(math.log(4))
    onehot = F.one_hot(torch.randint(0, 4, (1, 3, 3)), 4).permute(0, 3, 1, 2).float()
    assert entropy_loss(onehot).item() == 0.0


@pytest.mark.parametrize("kind", ["kl", "l2", "adaptive"])
def test_total_loss_eq_4_13_and_learned_parameters(kind):
    g = torch.Generator().manual_seed(0)
    logits, cams = torch.randn(4, 2, generator=g), torch.randn(4, 2, 4, 4, generator=g, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0])
    sizes = size_targets((torch.rand(4, 16, 16, generator=g) > 0.6).float(), labels, 2)
    crit = SizeSupervisedLoss(kind, lambda_size=3.0, lambda_entropy=0.5)
    loss, parts = crit(logits, labels, cams=cams, sizes=sizes, input_size=(16, 16))
    assert loss.item() == pytest.approx((parts["cls"] + 3 * parts["size"] + 0.5 * parts["entropy"]).item() / 4.5,
                                        rel=1e-5)
    assert parts["cls"].item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(cams.grad).all() and cams.grad.abs().sum() > 0
    params = list(crit.parameters())
    assert (len(params) == 2) == (kind == "adaptive")
    if kind == "adaptive":
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
        assert set(crit.state_dict()) == {"adaptive.robust.alpha_latent", "adaptive.robust.scale_latent"}


@pytest.mark.parametrize("kind", ["kl", "l2", "adaptive"])
@pytest.mark.parametrize("lambda_entropy", [0.0, 0.1])
def test_gradients_finite_for_saturated_cams(kind, lambda_entropy):
    """CAMs of +-200 saturate the softmax to exact 0/1 in float32; the loss and its gradient stay finite."""
    cams = (torch.tensor([200.0, -200.0]).repeat(2, 2, 4, 2).reshape(2, 2, 4, 4)).requires_grad_()
    labels = torch.tensor([1, 0])
    sizes = size_targets(torch.zeros(2, 16, 16), labels, 2)
    crit = SizeSupervisedLoss(kind, lambda_size=1.0, lambda_entropy=lambda_entropy)
    loss, _ = crit(torch.zeros(2, 2, requires_grad=True), labels, cams=cams, sizes=sizes, input_size=(16, 16))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(cams.grad).all()


@pytest.mark.parametrize("kind", ["kl", "l2", "adaptive"])
def test_size_loss_drives_cams_to_the_true_size(kind):
    """Gradient descent on free CAMs with only the size term recovers the annotated size."""
    labels = torch.tensor([1])
    target = size_targets(torch.cat([torch.ones(1, 8, 32), torch.zeros(1, 24, 32)], 1), labels, 2)  # 25 %
    cams = torch.zeros(1, 2, 8, 8, requires_grad=True)
    crit = SizeSupervisedLoss(kind, lambda_size=1.0, lambda_entropy=0.0)
    opt = torch.optim.Adam([cams, *crit.parameters()], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        m_hat = normalized_cams(cams, (32, 32))
        crit.size_penalty(predicted_sizes(m_hat), target).sum().backward()
        opt.step()
    nu = predicted_sizes(normalized_cams(cams, (32, 32)))
    assert torch.allclose(nu, target, atol=0.03)


def test_jia_et_al():
    g = torch.Generator().manual_seed(0)
    cams = torch.randn(5, 2, 6, 6, generator=g)
    s = torch.sigmoid(cams[:, 1])
    # eq. 4.1: generalized mean; r = 1 is the mean, large r tends to the max
    assert torch.allclose(jia_probability(cams, r=1.0), s.mean((1, 2)), atol=1e-6)
    assert torch.allclose(jia_probability(cams, r=200.0), s.amax((1, 2)), atol=2e-2)
    labels = torch.tensor([1, 1, 0, 1, 0])
    v_hat = s.mean((1, 2))
    a = torch.tensor([0.0, 1.0, 0.0, 0.2, 0.0])
    pen = jia_size_penalty(cams, labels, a)
    expected = torch.tensor([1, 1, 0, 1, 0]) * torch.relu(v_hat - a) ** 2
    assert torch.allclose(pen, expected) and pen[1] == 0 and pen[2] == 0
    crit = JiaLoss(lambda_size=2.0, r=4.0)
    sizes = torch.stack([1 - a, 1 - a, a], 1) * torch.tensor([1.0, 0.0, 1.0])
    loss, parts = crit(torch.zeros(5, 2), labels, cams=cams, sizes=sizes)
    p = jia_probability(cams, 4.0)
    bce = F.binary_cross_entropy(p, labels.float())
    assert parts["cls"].item() == pytest.approx(bce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(bce.item() + 2 * pen.mean().item(), rel=1e-5)
    assert torch.allclose(crit.scores(None, cams)[:, 1], p)
    with pytest.raises(ModelError, match="two classes"):
        crit(torch.zeros(5, 3), labels, cams=torch.randn(5, 3, 6, 6), sizes=sizes)


def test_build_criterion_and_errors():
    assert isinstance(build_criterion("size-kl"), SizeSupervisedLoss)
    assert isinstance(build_criterion("jia", r=2.0), JiaLoss)
    assert not build_criterion("image").needs_cams
    assert isinstance(build_criterion("image", lambda_size=1.0, lambda_entropy=0.0), ImageLabelLoss)  # one recipe
    assert build_criterion("jia", lambda_size=2.0, lambda_entropy=0.0).lambda_size == 2.0
    with pytest.raises(ConfigError, match="unknown loss"):
        build_criterion("dice")
    with pytest.raises(ConfigError, match="only apply"):
        SizeSupervisedLoss("kl", alpha_init=1.5)
    with pytest.raises(InputError, match="needs the CAMs"):
        SizeSupervisedLoss("l2")(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(InputError, match="background"):
        SizeSupervisedLoss("l2")(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), cams=torch.zeros(2, 2, 4, 4),
                                 sizes=torch.zeros(2, 2), input_size=(8, 8))
