"""Images: CAM grids and overlays, adversarial examples, perturbations and the examples of the defense
table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from ..errors import InputError
from ..io import atomic_path
from . import _base
from ._base import CAM_CMAP, MIN_FONT, _as_array


def grid_examples(change: Any, n: int = 4) -> list[int]:
    """The rows a CAM grid shows: the ``ceil(n / 2)`` images whose CAM changed most, then the images around
    the median change (``change`` per image, larger = more changed, e.g. ``1 - cam_dice``; NaN never
    chosen), at most ``n`` in all and each once."""
    values = np.asarray(_as_array(change), dtype=np.float64).ravel()
    if n < 1:
        raise InputError(f"a CAM grid shows at least one image, got n={n}")
    ranked = [int(i) for i in np.argsort(-values, kind="stable") if np.isfinite(values[i])]
    largest = ranked[: math.ceil(n / 2)]
    rest = ranked[len(largest):]
    middle = len(ranked) // 2 - len(largest)  # the median of all, within what is left
    start = min(max(middle - (n - len(largest)) // 2, 0), max(len(rest) - (n - len(largest)), 0))
    return largest + rest[start:start + n - len(largest)]


def plot_cam_grid(images: Any, adversarials: Any, clean_maps: Any, adv_maps: Any, path: str | Path, *,
                  masks: Any | None = None, row_titles: Sequence[str] | None = None, threshold: float = 0.5,
                  title: str | None = None, change: Any | None = None, n_rows: int | None = None,
                  cmap: str = CAM_CMAP) -> Path:
    """One row per image: image | adversarial | amplified perturbation | CAM on the clean image | CAM on
    the adversarial | ground truth (or an empty panel without masks).

    ``images`` and ``adversarials`` are (N, C, H, W) in [0, 1]; ``clean_maps``/``adv_maps`` the normalized
    input-sized CAMs (N, H, W) in [0, 1], drawn over the image in ``cmap`` (perceptually uniform by
    default) with the contour of the region at ``threshold``, with one colour bar of the CAM scale;
    ``masks`` (N, H, W) ground truth. With ``change`` (per image, larger = the CAM moved more, e.g.
    ``1 - cam_dice``) the grid chooses its ``n_rows`` (default 4) rows among the N images with
    :func:`grid_examples` (largest changes, then median ones) and says which in each row title; without
    it, the first ``n_rows`` (default all). The perturbation is shown as ``0.5 + δ / (2 max|δ|)`` per image
    (mid-gray = unchanged) and its amplification is written in its title. The PNG is written with a
    256-colour palette that keeps every step of the colour bar. Returns the path."""
    x, xa, mc, ma = (_as_array(t) for t in (images, adversarials, clean_maps, adv_maps))
    gt = _as_array(masks) if masks is not None else None
    titles = list(row_titles) if row_titles is not None else [""] * len(x)
    if change is not None:
        rows = grid_examples(change, n_rows or 4)
        kinds = ["largest CAM change"] * math.ceil((n_rows or 4) / 2) + ["median CAM change"] * len(x)
        titles = [f"{kind}\n{titles[i]}".strip() for kind, i in zip(kinds, rows)]
    else:
        rows = list(range(len(x) if n_rows is None else min(n_rows, len(x))))
        titles = [titles[i] for i in rows]
    n = len(rows)
    fig, axes = plt.subplots(n, 6, figsize=(12.5, 2.0 * n + 0.6), squeeze=False)
    for r, i in enumerate(rows):
        _cam_grid_row(axes[r], x[i], xa[i], mc[i], ma[i], None if gt is None else gt[i], threshold, cmap)
        if titles[r]:
            axes[r, 0].set_ylabel(titles[r], fontsize=MIN_FONT, rotation=0, ha="right", va="center", labelpad=4)
    for j, name in enumerate(["image", "adversarial", "perturbation", "CAM clean", "CAM adversarial",
                              "ground truth"]):
        axes[0, j].set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.subplots_adjust(right=0.9)  # one scale for every CAM panel, in a column of its own at the right
    scale = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=cmap)
    bar = fig.colorbar(scale, cax=fig.add_axes((0.925, 0.15, 0.015, 0.7)))
    bar.set_label("CAM (normalized)", fontsize=9)
    bar.ax.tick_params(labelsize=MIN_FONT)
    path = _base._save(fig, path, 80, layout=False)
    _to_palette(path, cmap)
    return path


def _cam_grid_row(axes: Any, x: np.ndarray, xa: np.ndarray, mc: np.ndarray, ma: np.ndarray, gt: np.ndarray | None,
                  threshold: float, cmap: str) -> None:
    """The six panels of one row of :func:`plot_cam_grid`."""
    def rgb(t: np.ndarray) -> np.ndarray:
        return np.clip(t.transpose(1, 2, 0), 0, 1) if t.shape[0] in (3, 4) else np.clip(t[0], 0, 1)

    grey = "gray" if x.shape[0] == 1 else None
    delta = xa - x
    peak = float(np.abs(delta).max())
    gain = 0.5 / peak if peak > 0 else 1.0
    for ax, panel in zip(axes[:3], (rgb(x), rgb(xa), rgb(0.5 + gain * delta))):
        ax.imshow(panel, cmap=grey, vmin=0, vmax=1, interpolation="nearest")
    axes[2].set_title(f"x{2 * gain:.0f}", fontsize=MIN_FONT, loc="right", pad=2)
    for ax, base, cam in ((axes[3], x, mc), (axes[4], xa, ma)):
        ax.imshow(rgb(base), cmap=grey, vmin=0, vmax=1, interpolation="nearest")
        ax.imshow(cam, cmap=cmap, alpha=0.6, vmin=0, vmax=1, interpolation="nearest")
        if cam.max() >= threshold > cam.min():
            ax.contour(cam, levels=[threshold], colors="white", linewidths=0.9)
    axes[5].imshow(rgb(x), cmap=grey, vmin=0, vmax=1, interpolation="nearest")
    if gt is not None:
        axes[5].imshow(np.ma.masked_where(gt < 0.5, gt), cmap="autumn", alpha=0.55, vmin=0, vmax=1,
                       interpolation="nearest")
        if gt.max() >= 0.5 > gt.min():
            axes[5].contour(gt, levels=[0.5], colors="yellow", linewidths=0.9)
    else:
        axes[5].text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=9, transform=axes[5].transAxes)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])


def _to_palette(path: Path, cmap: str, *, reserved: int = 64) -> None:
    """Rewrite the PNG at ``path`` with a 256-colour palette (small enough to commit next to results):
    ``reserved`` entries are the colour map's own steps, so a colour bar keeps its smooth gradient, the
    rest adapt to the figure."""
    from PIL import Image as _Image

    with _Image.open(path) as im:
        rgb = im.convert("RGB")
    adaptive = rgb.quantize(colors=256 - reserved).getpalette()[: 3 * (256 - reserved)]
    steps = (matplotlib.colormaps[cmap](np.linspace(0, 1, reserved))[:, :3] * 255).round().astype(int)
    palette = _Image.new("P", (1, 1))
    palette.putpalette(adaptive + steps.ravel().tolist())
    rgb.quantize(palette=palette, dither=_Image.Dither.NONE).save(path, optimize=True)


def plot_adversarial_examples(images: Any, adversarials: Any, labels: Any, predictions: Any, path: str | Path, *,
                              classes: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Figure A V-5 style: clean images (top row) and their adversarials (bottom row); the true label above
    each clean image, the adversarial prediction and the L2 norm of the perturbation below each adversarial
    (each text in its own row of the layout, so none overlaps an image). Images (N, C, H, W) in [0, 1]."""
    x = _as_array(images)
    xa = _as_array(adversarials)
    n = len(x)
    name = (lambda c: classes[int(c)] if classes is not None else str(int(c)))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n + 0.6, 3.9), squeeze=False)
    for i in range(n):
        for row, img in enumerate((x[i], xa[i])):
            ax = axes[row, i]
            shown = img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0), 0, 1)
            ax.imshow(shown, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        l2 = float(np.sqrt(((xa[i] - x[i]) ** 2).sum()))
        axes[0, i].set_title(f"true {name(labels[i])}", fontsize=9)
        axes[1, i].set_xlabel(f"pred. {name(predictions[i])}\nL2 {l2:.2f}", fontsize=MIN_FONT)
    axes[0, 0].set_ylabel("clean", fontsize=9)
    axes[1, 0].set_ylabel("adversarial", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _base._save(fig, path, 110)


def save_cam_overlays(images: Any, maps: Any, out_dir: str | Path, *, names: Sequence[str] | None = None,
                      cmap: str = CAM_CMAP, alpha: float = 0.5) -> list[Path]:
    """Write, per image, ``<name>_image.png`` (the image), ``<name>_map.png`` (the map in colour) and
    ``<name>_overlay.png`` (the map blended over the image), at the image's resolution.

    ``images`` are (N, C, H, W) in [0, 1] (C = 1 or 3); ``maps`` (N, H, W) or (N, 1, H, W) in [0, 1] at the
    image size, e.g. ``grad_cam(model, images, classes=..., normalize=True, size=images.shape[-2:])[1]`` or
    ``class_maps(cams, classes, size=...)``. ``names`` default to ``0, 1, ...``. Existing files are never
    replaced. Returns the written paths (three per image)."""
    x, m = _as_array(images), _as_array(maps)
    if m.ndim == 4 and m.shape[1] == 1:
        m = m[:, 0]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or m.ndim != 3 or m.shape[0] != x.shape[0] \
            or m.shape[1:] != x.shape[2:]:
        raise InputError(f"expected images (N, 1 or 3, H, W) and maps (N, H, W) of the same N, H, W; got "
                         f"{x.shape} and {m.shape} (upsample the maps: grad_cam(..., normalize=True, size=H) "
                         "or class_maps(cams, classes, size=(H, W)))")
    if np.nanmin(m) < -1e-6 or np.nanmax(m) > 1 + 1e-6:
        raise InputError(f"maps must lie in [0, 1] (got {np.nanmin(m):.3g}..{np.nanmax(m):.3g}); normalize them "
                         "first (grad_cam(..., normalize=True))")
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must lie in [0, 1], got {alpha!r}")
    names = [str(i) for i in range(len(x))] if names is None else [str(n) for n in names]
    if len(names) != len(x):
        raise InputError(f"{len(names)} names for {len(x)} images")
    colour = matplotlib.colormaps[cmap]
    out_dir = Path(out_dir)
    written = []
    for name, image, heat in zip(names, x, m):
        rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
        rgb = np.clip(rgb.transpose(1, 2, 0), 0, 1)
        coloured = colour(np.clip(heat, 0, 1))[..., :3]
        panels = {"image": rgb, "map": coloured, "overlay": (1 - alpha) * rgb + alpha * coloured}
        for kind, values in panels.items():
            with atomic_path(out_dir / f"{name}_{kind}.png") as tmp:
                Image.fromarray((np.clip(values, 0, 1) * 255).round().astype(np.uint8)).save(tmp, format="PNG")
            written.append(out_dir / f"{name}_{kind}.png")
    return written


def plot_defense_examples(images: Any, rows: Sequence[tuple[str, Any, Any]], labels: Any, path: str | Path, *,
                          title: str | None = None) -> Path:
    """Figure A V-5: clean images (top row), then per model a row of its adversarials, each titled with the
    adversarial prediction and the L2 norm of the perturbation; ``rows`` are ``(model name, adversarials,
    predictions)``. Images (N, C, H, W) in [0, 1]."""
    import numpy as np

    x = images.detach().cpu().float().numpy()
    n = len(x)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.25 * n + 1.2, 1.55 * (len(rows) + 1) + 0.5),
                             squeeze=False, constrained_layout=True)
    grids = [("clean", x, labels)] + [(name, adv.detach().cpu().float().numpy(), pred) for name, adv, pred in rows]
    for r, (name, batch, preds) in enumerate(grids):
        for i in range(n):
            ax = axes[r, i]
            img = batch[i]
            shown = img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0), 0, 1)
            ax.imshow(shown, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            text = str(int(preds[i])) if r == 0 else f"{int(preds[i])}  {np.sqrt(((img - x[i]) ** 2).sum()):.2f}"
            ax.set_title(text, fontsize=7, pad=2)
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _base._save(fig, path, 110)


def plot_perturbations(images: Any, adversarials: Any, labels: Any, predictions: Any, path: str | Path, *,
                       classes: Sequence[str] | None = None, title: str | None = None) -> Path:
    """A grid of clean images (top), their perturbations (middle; grey is zero, each scaled to its own largest
    magnitude, which the title gives) and the adversarials (bottom) with the true and the adversarial class.
    Images (N, C, H, W) in [0, 1]."""
    import numpy as np

    x = images.detach().cpu().float().numpy()
    xa = adversarials.detach().cpu().float().numpy()
    n = len(x)
    name = (lambda c: classes[int(c)] if classes is not None else str(int(c)))
    fig, axes = plt.subplots(3, n, figsize=(1.5 * n + 0.6, 5.0), squeeze=False, constrained_layout=True)
    for i in range(n):
        delta = xa[i] - x[i]
        scale = float(np.abs(delta).max()) or 1.0
        for row, img in enumerate((x[i], 0.5 + delta / (2 * scale), xa[i])):
            ax = axes[row, i]
            shown = img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0), 0, 1)
            ax.imshow(shown, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, i].set_title(name(labels[i]), fontsize=8)
        axes[1, i].set_title(f"L2 {np.sqrt((delta ** 2).sum()):.2f}, max {scale:.2f}", fontsize=7)
        axes[2, i].set_title(name(predictions[i]), fontsize=8)
    for row, label in enumerate(("clean", "perturbation", "adversarial")):
        axes[row, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _base._save(fig, path, 110)
