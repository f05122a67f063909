"""All matplotlib code of advwsl (figures are written to files; the non-interactive Agg backend is used).
Text in figures is at least 8 pt."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from .errors import InputError  # noqa: E402
from .io import atomic_path  # noqa: E402

#: Smallest font size of any text in a figure (points).
MIN_FONT = 8


def _as_array(t: Any) -> np.ndarray:
    return t.detach().cpu().float().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float32)


def _save(fig: Any, path: str | Path, dpi: int, *, layout: bool = True) -> Path:
    """Lay out (unless ``layout`` is False: the caller did), write and close ``fig``; the parent folder is
    created."""
    if layout:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_learning_curves(history: Sequence[dict[str, Any]], path: str | Path, *, title: str | None = None,
                         metrics: Sequence[str] = ("accuracy", "dice", "dice_pixels")) -> Path:
    """Learning curves of a training run: training and validation loss (left) and the validation
    ``metrics`` present in the rows plus the training accuracy (right), against the epoch.

    ``history`` holds one dict per epoch with ``epoch``, ``train_<name>`` and ``valid_<name>`` keys
    (the rows of a run's ``metrics.csv``). Returns the written path (PNG)."""
    path = Path(path)
    epochs = [float(r["epoch"]) for r in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.8))

    def series(key: str) -> list[float] | None:
        values = [float(r.get(key, math.nan)) for r in history]
        return None if all(math.isnan(v) for v in values) else values

    for key, label in (("train_loss", "train"), ("valid_loss", "valid")):
        values = series(key)
        if values is not None:
            ax_loss.plot(epochs, values, marker="o", ms=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    plotted = [("train_accuracy", "train accuracy")] + [(f"valid_{m}", f"valid {m}") for m in metrics]
    for key, label in plotted:
        values = series(key)
        if values is not None:
            ax_metric.plot(epochs, [100 * v for v in values], marker="o", ms=3, label=label)
    ax_metric.set(xlabel="epoch", ylabel="%", title="metrics", ylim=(0, 100))
    ax_metric.legend()
    ax_metric.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path = _save(fig, path, 120)
    return path


def plot_robustness_curves(curves: Any, path: str | Path, *, title: str | None = None,
                           epsilon: float | Sequence[float] | None = None, attacks: Sequence[str] | None = None,
                           ylabel: str = "accuracy (%)") -> Path:
    """Figure A V-4: model accuracy against the maximum L2 norm epsilon of the perturbation.

    ``curves`` is a long-format frame (columns ``attack``, ``epsilon``, ``accuracy`` as a share in [0, 1];
    drawn in percent), or a dict mapping a model name to such a frame. With one model every attack has its
    own colour; with several, each model has a colour and each attack a line style. ``All`` is drawn solid
    and thick; ``attacks`` selects which attacks to draw (default all); bounded-attack points (three or fewer
    radii) are drawn as markers. ``epsilon`` marks the radius (or radii) of the table with vertical lines;
    ``ylabel`` names what the curve measures (accuracy, or for the CAM goal the share of intact CAMs).
    Returns the written path (PNG)."""
    path = Path(path)
    frames = curves if isinstance(curves, dict) else {"": curves}
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    several = len(frames) > 1
    for m, (model, frame) in enumerate(frames.items()):
        names = [a for a in dict.fromkeys(frame["attack"]) if attacks is None or a in attacks]
        for j, attack in enumerate(names):
            sub = frame[frame["attack"] == attack].sort_values("epsilon")
            colour = colours[(m if several else j) % len(colours)]
            label = f"{model} {attack}".strip()
            y = 100 * sub["accuracy"]
            if len(sub) <= 3:  # a bounded attack evaluated at a few radii
                ax.plot(sub["epsilon"], y, "o", color=colour, ms=5, mfc="none", label=label)
            elif attack == "All":
                ax.plot(sub["epsilon"], y, "-", color="black" if not several else colour, lw=2.2, label=label)
            else:
                ax.plot(sub["epsilon"], y, linestyle=styles[j % len(styles)] if several else "-", color=colour,
                        lw=1.4, label=label)
    for eps in ([] if epsilon is None else [epsilon] if isinstance(epsilon, (int, float)) else epsilon):
        ax.axvline(float(eps), color="grey", lw=0.8, ls=":")
    ax.set(xlabel="maximum L2 norm of the perturbation (epsilon)", ylabel=ylabel, ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2 if several else 1)
    if title:
        ax.set_title(title)
    path = _save(fig, path, 120)
    return path


def plot_cam_grid(images: Any, adversarials: Any, clean_maps: Any, adv_maps: Any, path: str | Path, *,
                  masks: Any | None = None, row_titles: Sequence[str] | None = None, threshold: float = 0.5,
                  title: str | None = None) -> Path:
    """One row per image: image | adversarial | amplified perturbation | CAM on the clean image | CAM on
    the adversarial | ground truth (or an empty panel without masks).

    ``images`` and ``adversarials`` are (N, C, H, W) in [0, 1]; ``clean_maps``/``adv_maps`` the normalized
    input-sized CAMs (N, H, W) in [0, 1], drawn over the image with the contour of the region at
    ``threshold``, with a colour bar of the CAM scale; ``masks`` (N, H, W) ground truth. The perturbation is
    shown as ``0.5 + δ / (2 max|δ|)`` per image (mid-gray = unchanged) and its amplification is written in
    its title. The PNG is written with a 256-colour palette. Returns the path."""
    def rgb(t: np.ndarray) -> np.ndarray:
        return np.clip(t.transpose(1, 2, 0), 0, 1) if t.shape[0] in (3, 4) else np.clip(t[0], 0, 1)

    x, xa, mc, ma = (_as_array(t) for t in (images, adversarials, clean_maps, adv_maps))
    gt = _as_array(masks) if masks is not None else None
    n = len(x)
    cols = ["image", "adversarial", "perturbation", "CAM clean", "CAM adversarial", "ground truth"]
    fig, axes = plt.subplots(n, 6, figsize=(12.5, 2.0 * n + 0.6), squeeze=False)
    gray = x.shape[1] == 1
    heat = None
    for i in range(n):
        delta = xa[i] - x[i]
        peak = float(np.abs(delta).max())
        gain = 0.5 / peak if peak > 0 else 1.0
        panels = [rgb(x[i]), rgb(xa[i]), rgb(0.5 + gain * delta)]
        for j, panel in enumerate(panels):
            axes[i, j].imshow(panel, cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
        axes[i, 2].set_title(f"x{2 * gain:.0f}", fontsize=MIN_FONT, loc="right", pad=2)
        for j, (base, cam) in enumerate(((x[i], mc[i]), (xa[i], ma[i])), start=3):
            axes[i, j].imshow(rgb(base), cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
            heat = axes[i, j].imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
            if cam.max() >= threshold > cam.min():
                axes[i, j].contour(cam, levels=[threshold], colors="white", linewidths=0.9)
        axes[i, 5].imshow(rgb(x[i]), cmap="gray" if gray else None, vmin=0, vmax=1, interpolation="nearest")
        if gt is not None:
            axes[i, 5].imshow(np.ma.masked_where(gt[i] < 0.5, gt[i]), cmap="autumn", alpha=0.55, vmin=0, vmax=1,
                              interpolation="nearest")
            if gt[i].max() >= 0.5 > gt[i].min():
                axes[i, 5].contour(gt[i], levels=[0.5], colors="yellow", linewidths=0.9)
        else:
            axes[i, 5].text(0.5, 0.5, "no mask", ha="center", va="center", fontsize=9,
                            transform=axes[i, 5].transAxes)
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=MIN_FONT, rotation=0, ha="right", va="center",
                                  labelpad=4)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    for j, name in enumerate(cols):
        axes[0, j].set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if heat is not None:  # one scale for every CAM panel, in a column of its own at the right
        fig.subplots_adjust(right=0.9)
        scale = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1), cmap=heat.get_cmap())
        bar = fig.colorbar(scale, cax=fig.add_axes((0.925, 0.15, 0.015, 0.7)))  # the hues, without the blending
        bar.set_label("CAM (normalized)", fontsize=9)
        bar.ax.tick_params(labelsize=MIN_FONT)
    path = _save(fig, path, 80, layout=False)
    # a 256-colour palette keeps the grid small enough to commit next to results
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=256).save(path, optimize=True)
    return path


def plot_cam_curves(curve: Any, path: str | Path, *, accuracy: Any | None = None,
                    title: str | None = None) -> Path:
    """CAM robustness against the L2 budget ε: left, accuracy (%) from the minimal norms (``accuracy``:
    a frame with ``epsilon`` and ``accuracy`` in [0, 1], optional) and the CAM's agreement with the
    ground truth (``mask_dice``, ``mask_iou``, when present); right, how much the CAM moved (``cam_dice``,
    ``cam_iou``, ``cam_spearman`` and the centre-of-mass shift ``com_shift`` as a fraction of the image
    diagonal). ``curve`` is the frame of :func:`advwsl.evaluation.cams.cam_robustness`. Returns the path."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.0))
    if accuracy is not None:
        left.plot(accuracy["epsilon"], accuracy["accuracy"], "k-", lw=2, label="accuracy")
    for key, style in (("mask_dice", "-"), ("mask_iou", "--")):
        if key in curve:
            left.plot(curve["epsilon"], curve[key], style, color="tab:green", label=f"CAM vs mask: {key[5:]}")
    left.set(xlabel="L2 budget epsilon", ylabel="share / score", ylim=(0, 1.02), title="prediction and localization")
    for key, colour in (("cam_dice", "tab:blue"), ("cam_iou", "tab:cyan"), ("cam_spearman", "tab:purple"),
                        ("com_shift", "tab:red")):
        if key in curve:
            label = {"cam_dice": "Dice(clean CAM, adv CAM)", "cam_iou": "IoU(clean CAM, adv CAM)",
                     "cam_spearman": "Spearman rank correlation",
                     "com_shift": "centre-of-mass shift / diagonal"}[key]
            right.plot(curve["epsilon"], curve[key], color=colour, label=label)
    right.set(xlabel="L2 budget epsilon", ylabel="mean over images", ylim=(-0.02, 1.02),
              title="how much the CAM moved")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    path = _save(fig, path, 110)
    return path


def _slide_panel(ax: Any, thumbnail: Any, values: Any, *, vmin: float, vmax: float, cmap: str, alpha: float,
                 contour: float | None) -> Any:
    """Draw ``values`` (NaN transparent) over ``thumbnail`` on ``ax``; returns the map's image for a colour bar."""
    ax.imshow(thumbnail, interpolation="nearest")
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest")
    finite = np.nan_to_num(values, nan=vmin)
    if contour is not None and finite.max() >= contour > finite.min():
        ax.contour(finite, levels=[contour], colors="white", linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def _slide_figsize(thumbnail: Any, panels: int) -> tuple[float, float]:
    h, w = thumbnail.shape[:2]
    panel_w = 6.0
    return panel_w * panels + 1.2, max(2.5, panel_w * h / max(w, 1) + 0.8)


def plot_slide_map(thumbnail: Any, values: Any, path: str | Path, *, label: str = "", title: str | None = None,
                   vmin: float = 0.0, vmax: float = 1.0, cmap: str = "jet", alpha: float = 0.5,
                   contour: float | None = None) -> Path:
    """A slide map (H, W) at thumbnail resolution blended over the thumbnail (H, W, 3) uint8, with a colour
    bar named ``label``; NaN pixels (off the tiles) show the thumbnail only; ``contour`` draws the level set
    at that value. Returns the written path (PNG)."""
    fig, ax = plt.subplots(figsize=_slide_figsize(thumbnail, 1))
    image = _slide_panel(ax, thumbnail, values, vmin=vmin, vmax=vmax, cmap=cmap, alpha=alpha, contour=contour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, 120)


def plot_slide_attack(thumbnail: Any, before: Any, after: Any, path: str | Path, *, label: str = "",
                      titles: Sequence[str] = ("clean", "attacked"), title: str | None = None,
                      vmin: float = 0.0, vmax: float = 1.0, contour: float | None = None) -> Path:
    """Two slide maps side by side on one colour scale (the CAM before and after an attack), each over the
    thumbnail with the contour of its region at ``contour`` and a colour bar. Returns the written path (PNG)."""
    fig, axes = plt.subplots(1, 2, figsize=_slide_figsize(thumbnail, 2))
    for ax, values, name in zip(axes, (before, after), titles):
        image = _slide_panel(ax, thumbnail, values, vmin=vmin, vmax=vmax, cmap="jet", alpha=0.5, contour=contour)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, 120)


def plot_adversarial_examples(images: Any, adversarials: Any, labels: Any, predictions: Any, path: str | Path, *,
                              classes: Sequence[str] | None = None, title: str | None = None) -> Path:
    """Figure A V-5 style: clean images (top row) and their adversarials (bottom row) with the true label and
    the adversarial prediction and the L2 norm of the perturbation. Images (N, C, H, W) in [0, 1]."""
    import numpy as np

    x = images.detach().cpu().float().numpy()
    xa = adversarials.detach().cpu().float().numpy()
    n = len(x)
    name = (lambda c: classes[int(c)] if classes is not None else str(int(c)))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n + 0.4, 3.0), squeeze=False)
    for i in range(n):
        for row, img in enumerate((x[i], xa[i])):
            ax = axes[row, i]
            shown = img[0] if img.shape[0] == 1 else np.clip(img.transpose(1, 2, 0), 0, 1)
            ax.imshow(shown, cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        l2 = float(np.sqrt(((xa[i] - x[i]) ** 2).sum()))
        axes[0, i].set_title(name(labels[i]), fontsize=9)
        axes[1, i].set_title(f"{name(predictions[i])}  L2 {l2:.2f}", fontsize=8)
    axes[0, 0].set_ylabel("clean", fontsize=9)
    axes[1, 0].set_ylabel("adversarial", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, 110)
def save_cam_overlays(images: Any, maps: Any, out_dir: str | Path, *, names: Sequence[str] | None = None,
                      cmap: str = "jet", alpha: float = 0.5) -> list[Path]:
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


def plot_sweep(frame: Any, path: str | Path, *, measures: Sequence[str], labels: dict[str, str] | None = None,
               x: str = "x", lines: str = "method", panels: str | None = None, xlabel: str = "",
               log_x: bool = False, title: str | None = None) -> Path:
    """A hyper-parameter or training-set sweep (Figures 2.8, 2.9, 3.3, 4.2, 4.3): for each panel (a value of
    the ``panels`` column, or one overall) and each measure, the mean (drawn in percent; shares in [0, 1] in
    ``frame``) against ``x``, one line per value of ``lines``, with the ``<measure>_std`` band when present.
    ``labels`` names the measures on the y axes. Returns the written path (PNG)."""
    path = Path(path)
    panel_values = list(dict.fromkeys(frame[panels])) if panels else [None]
    cells = [(p, m) for p in panel_values for m in measures]
    cols = min(len(cells), 2 if len(cells) % 2 == 0 or len(cells) > 3 else len(cells))
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (panel, measure) in zip(axes.ravel(), cells):
        sub = frame if panel is None else frame[frame[panels] == panel]
        for name in dict.fromkeys(sub[lines]):
            part = sub[sub[lines] == name].sort_values(x)
            y = 100 * part[measure].astype(float)
            ax.plot(part[x], y, "o-", ms=3.5, lw=1.3, label=str(name))
            if f"{measure}_std" in part:
                s = 100 * part[f"{measure}_std"].astype(float).fillna(0.0)
                ax.fill_between(part[x], y - s, y + s, alpha=0.15)
        if log_x:
            ax.set_xscale("symlog", linthresh=min(v for v in frame[x] if v > 0) if (frame[x] > 0).any() else 1.0)
        ax.set(xlabel=xlabel or x, ylabel=f"{(labels or {}).get(measure, measure)} (%)")
        if panel is not None:
            ax.set_title(str(panel), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(cells):]:
        ax.axis("off")
    if title:
        fig.suptitle(textwrap.fill(title, 45 * cols), fontsize=10)
    return _save(fig, path, 120)


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
    return _save(fig, path, 110)


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
    return _save(fig, path, 110)
