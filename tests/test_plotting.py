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
    save = plotting._base._save

    def keep(fig, path, dpi, *, layout=True):
        if layout:  # as _save lays the figure out
            fig.tight_layout()
        figures.append(fig)
        fig.savefig(path, dpi=dpi)
        return path

    monkeypatch.setattr(plotting._base, "_save", keep)
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


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_robustness_curves_reach_every_norm_and_no_curve_hides_another(tmp_path, captured):
    rng = np.random.default_rng(0)
    ddn = rng.gamma(2, 0.15, 64)
    cw = np.where(np.arange(64) % 2 == 0, np.inf, 4.0 + rng.random(64) * 1.5)  # half never fooled, up to 5.5
    cw[1] = 0.0  # a misclassified image
    grid = np.linspace(0, 3.75, 31)  # a grid that stops before C&W's largest norm
    norms = {"DDN 100": ddn, "C&W 9x10000": cw, "All": np.minimum(ddn, cw)}
    frame = pd.concat([pd.DataFrame({"attack": k, "epsilon": grid, "accuracy": (v[None] > grid[:, None]).mean(1)})
                       for k, v in norms.items()])
    plotting.plot_robustness_curves(frame, tmp_path / "curves.png", epsilon=(0.5, 1.0), norms=norms)
    (fig,) = captured
    ax = fig.axes[0]
    assert ax.get_xlim()[1] >= cw[np.isfinite(cw)].max()
    lines = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert set(lines) == {"DDN 100", "C&W 9x10000 (50 % never fooled)", "All"}
    styles = {(line.get_color(), str(line.get_linestyle()), line.get_marker()) for line in lines.values()}
    assert len(styles) == 3
    assert lines["All"].get_zorder() < lines["DDN 100"].get_zorder()  # the band is under the attack it equals
    cw_line = lines["C&W 9x10000 (50 % never fooled)"]
    eps, acc = cw_line.get_xdata(), cw_line.get_ydata()
    np.testing.assert_allclose(acc, 100 * (cw[None] > np.asarray(eps)[:, None]).mean(1))  # exact, from the norms
    assert acc[-1] == pytest.approx(50.0) and eps[-1] >= cw[np.isfinite(cw)].max()
    assert any(t.get_text() == "50 %" for t in ax.texts)  # what is left at the right edge is written


def test_cam_curves_put_the_centre_of_mass_shift_on_its_own_axis(tmp_path, captured):
    eps = np.linspace(0, 1, 6)
    curve = pd.DataFrame({"epsilon": eps, "mask_dice": 0.6 + 0 * eps, "cam_dice": 1 - 0.1 * eps,
                          "cam_spearman": 1 - 0.05 * eps, "com_shift": 0.03 * eps, "com_shift_px": 2.7 * eps})
    plotting.plot_cam_curves(curve, tmp_path / "cam.png", accuracy=pd.DataFrame({"epsilon": eps, "accuracy": 1 - eps}))
    (fig,) = captured
    owner = {line.get_label(): ax for ax in fig.axes for line in ax.get_lines()}
    shift_ax = owner["centre-of-mass shift"]
    assert shift_ax is not owner["Dice(clean CAM, adv CAM)"] and shift_ax is not owner["CAM vs mask: Dice"]
    assert shift_ax.get_ylabel() == "pixels" and shift_ax.get_ylim()[1] == pytest.approx(2.7 * 1.15)


def test_grid_examples_are_the_largest_then_the_median_changes():
    change = np.array([0.5, 0.9, np.nan, 0.1, 0.3, 0.7, 0.2, 0.4, 0.6])
    rows = plotting.grid_examples(change, 4)
    assert rows[:2] == [1, 5]  # 0.9, 0.7
    ranked = sorted(np.nan_to_num(change, nan=-1), reverse=True)[:8]
    median = float(np.median(ranked))  # of the 8 finite values: 0.45
    assert all(abs(change[i] - median) <= 0.15 for i in rows[2:]) and len(set(rows)) == 4
    assert 2 not in plotting.grid_examples(change, 8)  # NaN never chosen
    assert len(plotting.grid_examples(change, 20)) == 8
    with pytest.raises(InputError):
        plotting.grid_examples(change, 0)


def test_cam_grid_chooses_rows_uses_a_uniform_colour_map_and_shows_more_on_request(tmp_path, captured):
    x = torch.rand(10, 3, 16, 16)
    maps = torch.rand(10, 16, 16)
    change = torch.linspace(0, 1, 10)
    titles = [f"#{i}\nL2 0.1\nDice 0.5" for i in range(10)]
    plotting.plot_cam_grid(x, x, maps, maps, tmp_path / "a.png", row_titles=titles, change=change)
    plotting.plot_cam_grid(x, x, maps, maps, tmp_path / "b.png", row_titles=titles, change=change, n_rows=6)
    four, six = captured
    for fig, n in ((four, 4), (six, 6)):
        rows = [ax for ax in fig.axes if ax.get_ylabel() and getattr(ax, "_colorbar", None) is None]
        labels = [ax.get_ylabel() for ax in rows]
        assert len(labels) == n
        assert labels[0].startswith("largest CAM change\n#9") and "median CAM change" in labels[-1]
        heat = [im for ax in fig.axes for im in ax.get_images() if im.get_alpha() is not None and im.get_alpha() < 1
                and im.get_cmap().name != "autumn"]
        assert heat and {im.get_cmap().name for im in heat} == {"viridis"}
        bars = [a for a in fig.axes if getattr(a, "_colorbar", None) is not None]
        assert bars[0]._colorbar.cmap.name == "viridis"
        fig.canvas.draw()
        boxes = [ax.yaxis.label.get_window_extent() for ax in rows]
        assert not any(_overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_adversarial_examples_texts_overlap_no_image_and_no_other_text(tmp_path, captured):
    from tests.conftest import CIFAR10_CLASSES

    x = torch.rand(10, 3, 32, 32)
    plotting.plot_adversarial_examples(x, (x + 0.1).clamp(0, 1), torch.arange(10), (torch.arange(10) + 1) % 10,
                                       tmp_path / "fig.png", classes=CIFAR10_CLASSES,
                                       title="Figure A V-5: DDN 1000 adversarials (cifar10)")
    (fig,) = captured
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t.get_window_extent(renderer) for t in _texts(fig)]
    images = [ax.get_window_extent(renderer) for ax in fig.axes]
    assert len(texts) >= 21
    assert not any(_overlaps(a, b) for i, a in enumerate(texts) for b in texts[i + 1:])
    assert not any(_overlaps(t, im) for t in texts for im in images)


def test_a_small_never_fooled_share_is_not_written_as_zero(tmp_path, captured):
    """One image of 196 never fooled is 0.5 %, in the legend and at the right edge."""
    cw = np.linspace(0.5, 3.0, 196)
    cw[7] = np.inf
    grid = np.linspace(0, 3.0, 31)
    frame = pd.DataFrame({"attack": "C&W 9x10000", "epsilon": grid, "accuracy": (cw[None] > grid[:, None]).mean(1)})
    plotting.plot_robustness_curves(frame, tmp_path / "curves.png", epsilon=(1.0,), norms={"C&W 9x10000": cw})
    (fig,) = captured
    ax = fig.axes[0]
    assert "C&W 9x10000 (0.5 % never fooled)" in {line.get_label() for line in ax.get_lines()}
    assert any(t.get_text() == "0.5 %" for t in ax.texts)
