"""Figures: the CAM grid has a colour bar and readable text, the robustness curves one colour per attack and
their y label, and the CAM overlays are written pixel for pixel."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colorbar import Colorbar
from matplotlib.text import Text
from PIL import Image

from advwsl import plotting
from advwsl.errors import ConfigError, InputError


@pytest.fixture
def captured(monkeypatch):
    """The figures the plotting functions write, kept open for inspection."""
    figures = []
    save = plotting._save

    def keep(fig, path, dpi, **kwargs):
        figures.append(fig)
        fig.savefig(path, dpi=dpi)
        return path

    monkeypatch.setattr(plotting, "_save", keep)
    yield figures
    for fig in figures:
        plt.close(fig)
    assert save is not None


def _texts(fig):
    return [t for t in fig.findobj(Text) if t.get_text().strip()]


def test_cam_grid_has_a_colour_bar_and_readable_text(tmp_path, captured):
    x = torch.rand(3, 3, 16, 16)
    maps = torch.rand(3, 16, 16)
    plotting.plot_cam_grid(x, (x + 0.01).clamp(0, 1), maps, maps.flip(1), tmp_path / "grid.png",
                           row_titles=["a", "b", "c"], title="grid")
    (fig,) = captured
    bars = [a for a in fig.axes if getattr(a, "_colorbar", None) is not None]
    assert len(bars) == 1 and isinstance(bars[0]._colorbar, Colorbar)
    assert bars[0]._colorbar.mappable.get_clim() == (0.0, 1.0)
    sizes = [t.get_fontsize() for t in _texts(fig)]
    assert sizes and min(sizes) >= plotting.MIN_FONT
    assert Image.open(tmp_path / "grid.png").mode == "P"  # the 256-colour palette


def test_robustness_curves_one_colour_per_attack_and_ylabel(tmp_path, captured):
    eps = np.linspace(0, 2, 6)
    frame = pd.DataFrame([{"attack": a, "epsilon": e, "accuracy": max(0.0, 1 - e * k)}
                          for k, a in enumerate(["C&W", "DeepFool", "DDN"], start=1) for e in eps])
    plotting.plot_robustness_curves(frame, tmp_path / "curves.png", ylabel="intact CAMs (%)")
    (fig,) = captured
    ax = fig.axes[0]
    assert ax.get_ylabel() == "intact CAMs (%)"
    colours = [line.get_color() for line in ax.get_lines()]
    assert len(colours) == 3 and len(set(colours)) == 3


def test_cam_overlays_written_pixel_for_pixel(tmp_path):
    images = torch.rand(2, 3, 12, 10)
    maps = torch.zeros(2, 1, 12, 10)
    maps[0, 0, :6] = 1.0
    paths = plotting.save_cam_overlays(images, maps, tmp_path / "ov", names=["x", "y"], alpha=0.5)
    assert [p.name for p in paths] == ["x_image.png", "x_map.png", "x_overlay.png",
                                       "y_image.png", "y_map.png", "y_overlay.png"]
    image = np.asarray(Image.open(paths[0]))
    assert image.shape == (12, 10, 3)
    np.testing.assert_allclose(image / 255.0, images[0].permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    overlay = np.asarray(Image.open(paths[2])).astype(float)
    colour = np.asarray(Image.open(paths[1])).astype(float)
    np.testing.assert_allclose(overlay, 0.5 * image + 0.5 * colour, atol=1.01)
    assert not np.array_equal(colour[0, 0], colour[-1, -1])  # hot and cold ends of the colour map
    with pytest.raises(ConfigError, match="already exists"):  # never replaces a file
        plotting.save_cam_overlays(images, maps, tmp_path / "ov", names=["x", "y"])
    with pytest.raises(InputError, match="size="):
        plotting.save_cam_overlays(images, torch.rand(2, 3, 3), tmp_path / "other")
    with pytest.raises(InputError, match="normalize"):
        plotting.save_cam_overlays(images, maps * 5, tmp_path / "other")
