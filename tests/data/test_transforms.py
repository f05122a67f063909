"""Joint image + mask transforms of sections 2.1.3.1 and 3.4.2."""

from __future__ import annotations

import math

import pytest
import torch

from advwsl.data import eval_transform, training_transform
from advwsl.data.transforms import (ColorJitter, RandomCrop, RandomFlip, RandomRotate90, RandomRotatedCrop,
                                    RandomScaleCrop)
from advwsl.errors import InputError


def _sample(h=40, w=60, c=3):
    """An image whose first channel encodes the pixel index, and a mask equal to a threshold of it."""
    idx = torch.arange(h * w, dtype=torch.float32).view(h, w)
    img = torch.stack([idx / (h * w)] + [torch.rand(h, w) for _ in range(c - 1)])
    return {"image": img, "mask": (idx % 7 == 0).float(), "label": 1}


def _consistent(s):
    """The mask still equals the threshold of the (moved) pixel index."""
    idx = torch.round(s["image"][0] * 40 * 60)
    return torch.equal(s["mask"], (idx % 7 == 0).float())


@pytest.mark.parametrize("t", [RandomCrop(32), RandomRotate90(), RandomFlip()])
def test_geometric_transforms_move_image_and_mask_together(t):
    torch.manual_seed(0)
    for _ in range(10):
        out = t(_sample())
        assert _consistent(out) and out["label"] == 1


def test_random_crop_sizes_and_padding():
    out = RandomCrop(448)(_sample(460, 700))
    assert out["image"].shape == (3, 448, 448) and out["mask"].shape == (448, 448)
    small = RandomCrop(64)(_sample(40, 60))
    assert small["image"].shape == (3, 64, 64) and small["mask"].shape == (64, 64)


def test_rotate90_covers_all_angles():
    torch.manual_seed(0)
    s = _sample(8, 8)
    seen = {tuple(RandomRotate90()(s)["image"][0, 0, :2].tolist()) for _ in range(40)}
    assert len(seen) == 4


def test_color_jitter_changes_image_only_and_stays_in_range():
    torch.manual_seed(0)
    s = _sample()
    out = ColorJitter(0.5, 0.5, 0.5, 0.05)(s)
    assert torch.equal(out["mask"], s["mask"]) and not torch.equal(out["image"], s["image"])
    assert out["image"].min() >= 0 and out["image"].max() <= 1


def test_rotated_crop_has_no_empty_corners():
    """BACH: crops at random angles never reach outside the image (section 2.1.3.1)."""
    torch.manual_seed(0)
    h, w, size = 120, 160, 64
    img = torch.ones(3, h, w)
    mask = torch.ones(h, w)
    for _ in range(20):
        out = RandomRotatedCrop(size)({"image": img, "mask": mask})
        assert out["image"].shape == (3, size, size)
        assert torch.allclose(out["image"], torch.ones_like(out["image"]), atol=1e-5)  # zero padding would show
        assert (out["mask"] == 1).all()
    with pytest.raises(InputError, match="smaller than the rotated crop"):
        RandomRotatedCrop(200)({"image": img})


def test_rotated_crop_at_zero_angle_is_a_plain_crop(monkeypatch):
    import advwsl.data.transforms as tr

    values = iter([0.0, 40.0, 30.0])  # angle, centre x, centre y (continuous coordinates)
    monkeypatch.setattr(tr, "_uniform", lambda lo, hi: next(values))
    s = _sample(60, 80)
    out = RandomRotatedCrop(16)(s)
    assert torch.allclose(out["image"], s["image"][:, 22:38, 32:48], atol=1e-4)
    assert torch.equal(out["mask"], s["mask"][22:38, 32:48])


def test_voc_scale_crop_and_presets():
    torch.manual_seed(0)
    s = {"image": torch.rand(3, 300, 500), "mask": torch.randint(0, 21, (300, 500)), "label": torch.ones(20)}
    out = RandomScaleCrop(448, 224)(s)
    assert out["image"].shape == (3, 448, 448) and out["mask"].shape == (448, 448)
    assert set(out["mask"].unique().tolist()) <= set(s["mask"].unique().tolist())  # nearest: no new values
    for name in ("breakhis", "glas", "bach", "camelyon16", "synthetic", "voc", "mnist"):
        training_transform(name)
    assert training_transform("breakhis")({"image": torch.rand(3, 460, 700)})["image"].shape == (3, 448, 448)
    assert training_transform("glas")({"image": torch.rand(3, 522, 775)})["image"].shape == (3, 416, 416)
    assert training_transform("bach")({"image": torch.rand(3, 768, 1024)})["image"].shape == (3, 512, 512)
    assert eval_transform("voc")(s)["image"].shape == (3, 448, 448)
    with pytest.raises(InputError, match="unknown dataset .unknown.; known: .*breakhis"):
        training_transform("unknown")
    assert math.isclose(float(eval_transform("glas")(s)["image"].sum()), float(s["image"].sum()))
