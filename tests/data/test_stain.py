"""Stain normalization: L*a*b* against scikit-image, Macenko on images made by Beer-Lambert from known stain
vectors (it recovers them, and recomposes the image with the target's), agreement with torchstain where it
is installed, Reinhard's moments, the training transform, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advwsl.data.stain import (MACENKO_REFERENCE, StainStats, lab_to_rgb, normalize_stain, rgb_to_lab,
                               stain_stats)
from advwsl.data.transforms import StainNormalize
from advwsl.errors import InputError

IO = 240.0


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def beer_lambert(matrix: np.ndarray, concentrations: np.ndarray, side: int = 48) -> torch.Tensor:
    """The image whose optical density -log((255 x + 1) / Io) is exactly ``matrix @ concentrations``."""
    od = matrix @ concentrations
    x = (IO * np.exp(-od) - 1) / 255
    return torch.from_numpy(x.reshape(3, side, side)).float()


def concentrations(side: int = 48, seed: int = 0) -> np.ndarray:
    """Haematoxylin and eosin amounts per pixel: a tenth pure H, a tenth pure E, the rest mixed."""
    rng = np.random.default_rng(seed)
    c = rng.gamma(2.0, 0.35, (2, side * side))
    kind = rng.random(side * side)
    c[1, kind < 0.1] = 0.0
    c[0, (kind >= 0.1) & (kind < 0.2)] = 0.0
    return c + 0.8 * (c > 0)  # every pixel is tissue (OD >= 0.15 in every channel)


# stain vectors (unit OD) with every component >= 0.2, so that pure-stain pixels are tissue too
H_SOURCE, E_SOURCE = _unit([0.65, 0.70, 0.29]), _unit([0.20, 0.80, 0.57])
H_TARGET, E_TARGET = _unit([0.56, 0.72, 0.41]), _unit([0.30, 0.75, 0.59])


def test_lab_agrees_with_scikit_image_and_inverts():
    from skimage import color

    x = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    lab = rgb_to_lab(x)
    np.testing.assert_allclose(lab.numpy(), color.rgb2lab(x.permute(1, 2, 0).numpy()).transpose(2, 0, 1), atol=2e-3)
    np.testing.assert_allclose(lab_to_rgb(lab).numpy(), x.numpy(), atol=1e-5)


def test_macenko_recovers_the_stain_vectors_of_a_beer_lambert_image():
    c = concentrations()
    stats = stain_stats(beer_lambert(np.stack([H_SOURCE, E_SOURCE], 1), c))
    matrix = np.asarray(stats.matrix)
    assert matrix @ [1, 0] @ H_SOURCE > 0.999 and matrix @ [0, 1] @ E_SOURCE > 0.999  # cosines, H first
    expected = np.quantile(c, 0.99, axis=1)
    np.testing.assert_allclose(stats.max_concentrations, expected, rtol=0.02)


def test_macenko_recomposes_the_image_with_the_target_stains():
    c = concentrations()
    source = beer_lambert(np.stack([H_SOURCE, E_SOURCE], 1), c)
    target_image = beer_lambert(np.stack([H_TARGET, E_TARGET], 1), concentrations(seed=1))
    out = normalize_stain(source, stain_stats(target_image))
    # same concentrations (their 99th percentiles scaled to the target's), the target's stain vectors
    scale = np.quantile(concentrations(seed=1), 0.99, axis=1) / np.quantile(c, 0.99, axis=1)
    expected = beer_lambert(np.stack([H_TARGET, E_TARGET], 1), c * scale[:, None]).clamp(0, 1)
    assert (out - expected).abs().max() < 0.02 and (out - expected).abs().mean() < 0.004
    assert (source - expected).abs().mean() > 0.02  # the stains did change (5x the error above)
    # an image normalized to its own stain is itself
    same = normalize_stain(source, stain_stats(source))
    assert (same - source.clamp(0, 1)).abs().max() < 1e-3


def test_macenko_agrees_with_torchstain():
    torchstain = pytest.importorskip("torchstain")
    from advwsl.data.synthetic import SyntheticHistology

    tiles = SyntheticHistology("test", n=3).tensors()[0]
    to_u8 = lambda t: (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    peer = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
    peer.fit(to_u8(tiles[2]))
    expected, _, _ = peer.normalize(I=to_u8(tiles[1]), stains=False)
    target = stain_stats(tiles[2])
    np.testing.assert_allclose(np.asarray(target.matrix), peer.HERef, atol=1e-6)
    np.testing.assert_allclose(target.max_concentrations, peer.maxCRef, rtol=1e-5)
    ours = normalize_stain(tiles[1], target).permute(1, 2, 0).numpy() * 255
    # torchstain truncates to uint8 and omits the -1 of the inverse optical density: within one grey level
    assert np.abs(ours - expected).max() <= 1.0 + 1e-3


def test_reinhard_matches_the_target_moments():
    gen = torch.Generator().manual_seed(0)
    source = 0.3 + 0.4 * torch.rand(3, 32, 32, generator=gen)
    reference = (0.5 + 0.3 * torch.rand(3, 32, 32, generator=gen)) * torch.tensor([1.0, 0.7, 0.9]).view(3, 1, 1)
    target = stain_stats(reference, "reinhard")
    out = normalize_stain(source, target)
    lab = rgb_to_lab(out).reshape(3, -1).double()
    np.testing.assert_allclose(lab.mean(1).numpy(), target.mean, atol=0.05)
    np.testing.assert_allclose(lab.std(1).numpy(), target.std, rtol=0.01)
    assert (normalize_stain(reference, target) - reference).abs().max() < 1e-3


def test_background_left_unchanged_batches_and_the_transform():
    white = torch.ones(3, 48, 48) * 0.97
    assert torch.equal(normalize_stain(white), white)  # no tissue: no stain to estimate
    c = concentrations()
    tile = beer_lambert(np.stack([H_SOURCE, E_SOURCE], 1), c).clamp(0, 1)
    batch = normalize_stain(torch.stack([tile, white]))
    assert batch.shape == (2, 3, 48, 48) and torch.equal(batch[1], white)
    assert torch.allclose(batch[0], normalize_stain(tile))
    sample = StainNormalize()({"image": tile, "mask": torch.ones(48, 48), "label": 1})
    assert torch.equal(sample["image"], normalize_stain(tile, MACENKO_REFERENCE)) and sample["label"] == 1
    assert torch.equal(sample["mask"], torch.ones(48, 48))


def test_bad_inputs():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        normalize_stain(torch.full((3, 4, 4), 2.0))
    with pytest.raises(InputError, match=r"RGB images"):
        normalize_stain(torch.rand(1, 4, 4))
    with pytest.raises(InputError, match="macenko"):
        stain_stats(torch.rand(3, 4, 4), "vahadane")
    with pytest.raises(InputError, match="source stain"):
        normalize_stain(torch.rand(3, 8, 8), MACENKO_REFERENCE, source=StainStats("reinhard", mean=(0, 0, 0),
                                                                                   std=(1, 1, 1)))
