"""All matplotlib code of advwsl (figures are written to files; the non-interactive Agg backend is used).
Text in figures is at least 8 pt; maps use a perceptually uniform colour map (:data:`CAM_CMAP`) with a colour
bar; every curve of a figure has its own colour, line style and marker, and every axis covers its data."""

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
    """Lay out (unless ``layout`` is False, or the figure has its own layout engine, e.g. constrained layout:
    tight layout on top of it only warns), write and close ``fig``; the parent folder is created."""
    if layout and fig.get_layout_engine() is None:
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


#: Line styles cycled with the colours, so that no two curves of a figure share both (one hidden under
#: another stays visible by its dashes).
LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)), (0, (1, 1)), (0, (5, 2, 1, 2, 1, 2)))

#: Markers, one per curve, drawn every few points.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

#: Perceptually uniform colour map of every CAM and slide map (uniform lightness steps, readable in grey).
CAM_CMAP = "viridis"


def _palette(k: int) -> tuple[Any, Any, str]:
    """Colour, line style and marker of the ``k``-th curve of a figure."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return colours[k % len(colours)], LINE_STYLES[k % len(LINE_STYLES)], MARKERS[k % len(MARKERS)]


def _curve_from_norms(values: Any, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact accuracy(ε) = share of samples whose minimal norm is > ε (0: misclassified, inf: never
    fooled), on a grid from 0 to ``top`` that holds every finite norm (the steps fall where they are)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    eps = np.union1d(np.linspace(0.0, top, 401), finite[finite <= top])
    return eps, (v[None, :] > eps[:, None]).mean(axis=1)


def _robustness_series(frames: dict[str, Any], attacks: Sequence[str] | None,
                       norms: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:
    """One entry per curve to draw (model, attack, label, epsilon, accuracy, bounded, never-fooled share) and
    the right end of the x axis: every curve's largest finite norm (and largest grid value) is inside it."""
    finite = [float(np.max(f)) for f in (np.asarray(v, float)[np.isfinite(np.asarray(v, float))]
                                         for v in norms.values()) if f.size]
    top = max([float(frame["epsilon"].max()) for frame in frames.values() if len(frame)] + finite + [1e-3])
    top = top * 1.05 if finite else top
    series = []
    for model, frame in frames.items():
        for attack in [a for a in dict.fromkeys(frame["attack"]) if attacks is None or a in attacks]:
            label = f"{model} {attack}".strip()
            sub = frame[frame["attack"] == attack].sort_values("epsilon")
            entry = {"model": model, "attack": attack, "label": label, "epsilon": sub["epsilon"].to_numpy(float),
                     "accuracy": sub["accuracy"].to_numpy(float), "bounded": len(sub) <= 3, "never": None}
            if label in norms:
                values = np.asarray(norms[label], float)
                entry["epsilon"], entry["accuracy"] = _curve_from_norms(values, top)
                entry["bounded"], entry["never"] = False, float(np.isinf(values).mean())
            series.append(entry)
    seen = {e["label"] for e in series}
    for label in (k for k in norms if k not in seen and (attacks is None or k in attacks) and not len(frames) > 1):
        eps, acc = _curve_from_norms(norms[label], top)
        series.append({"model": "", "attack": label, "label": label, "epsilon": eps, "accuracy": acc,
                       "bounded": False, "never": float(np.isinf(np.asarray(norms[label], float)).mean())})
    return series, top


def plot_robustness_curves(curves: Any, path: str | Path, *, title: str | None = None,
                           epsilon: float | Sequence[float] | None = None, attacks: Sequence[str] | None = None,
                           ylabel: str = "accuracy (%)", norms: dict[str, Any] | None = None) -> Path:
    """Figure A V-4: model accuracy against the maximum L2 norm epsilon of the perturbation.

    ``curves`` is a long-format frame (columns ``attack``, ``epsilon``, ``accuracy`` as a share in [0, 1];
    drawn in percent), or a dict mapping a model name to such a frame. ``norms`` optionally maps a curve's
    label (``"<model> <attack>"``, or the attack alone for one model) to its per-sample minimal norms
    (0: misclassified, inf: never fooled; ``AttackResult.norms``): that curve is then drawn exactly, on a
    grid holding every norm, and its legend says which share was never fooled.

    The x axis reaches every curve's largest finite norm and the end of every given grid; a curve still
    above 0 % at the right edge is labelled there with its value. Every curve has its own colour, line
    style and marker (with several models: a colour per model, a style per attack); ``All`` (per sample the
    best attack) is a wide translucent band drawn underneath, so the attack that coincides with it stays
    visible. ``attacks`` selects which attacks to draw (default all); bounded-attack points (three or fewer
    radii) are drawn as markers. ``epsilon`` marks the radius (or radii) of the table with vertical lines;
    ``ylabel`` names what the curve measures (accuracy, or for the CAM goal the share of intact CAMs).
    Returns the written path (PNG)."""
    path = Path(path)
    frames = curves if isinstance(curves, dict) else {"": curves}
    series, top = _robustness_series(frames, attacks, dict(norms or {}))
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    several = len(frames) > 1
    models = list(frames)
    for k, entry in enumerate(series):
        colour, style, marker = _palette(models.index(entry["model"]) if several else k)
        if several:
            style = LINE_STYLES[list(dict.fromkeys(e["attack"] for e in series)).index(entry["attack"]) % len(LINE_STYLES)]
        _draw_curve(ax, entry, colour, style, marker, several=several)
    marks = [] if epsilon is None else [epsilon] if isinstance(epsilon, (int, float)) else list(epsilon)
    for eps in marks:
        ax.axvline(float(eps), color="grey", lw=0.8, ls=":", zorder=0)
    right = max([top] + [float(e) * 1.02 for e in marks])
    ax.set(xlabel="maximum L2 norm of the perturbation (epsilon)", ylabel=ylabel, ylim=(0, 102), xlim=(0, right * 1.08))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=MIN_FONT, ncol=2 if several or len(series) > 5 else 1)
    if title:
        ax.set_title(title)
    return _save(fig, path, 120)


def _percent(value: float) -> str:
    """A share in percent for a legend: one decimal below 10 % (one image in 196 is 0.5 %, not 0 %)."""
    return f"{value:.1f} %" if 0 < value < 10 else f"{value:.0f} %"


def _draw_curve(ax: Any, entry: dict[str, Any], colour: Any, style: Any, marker: str, *, several: bool) -> None:
    """One curve of :func:`plot_robustness_curves` (see there for the styles)."""
    eps, y = entry["epsilon"], 100 * entry["accuracy"]
    label = entry["label"]
    if entry["never"]:
        label += f" ({_percent(100 * entry['never'])} never fooled)"
    if entry["bounded"]:  # a bounded attack evaluated at a few radii
        ax.plot(eps, y, marker, color=colour, ms=6, mfc="none", mew=1.4, label=label, zorder=4)
        return
    if entry["attack"] == "All":
        ax.plot(eps, y, "-", color=colour if several else "black", lw=5, alpha=0.3, label=label, zorder=1,
                solid_capstyle="butt")
    else:
        ax.plot(eps, y, linestyle=style, color=colour, lw=1.6, marker=marker, ms=4.5, mfc="none",
                markevery=max(1, len(eps) // 8), label=label, zorder=3)
    if len(y) and y[-1] > 0.5:  # what is left at the right edge is said, not left to the eye
        ax.annotate(_percent(y[-1]), (eps[-1], y[-1]), xytext=(3, 0), textcoords="offset points",
                    fontsize=MIN_FONT, color=colour if entry["attack"] != "All" or several else "black",
                    va="center")


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
    path = _save(fig, path, 80, layout=False)
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


def plot_cam_curves(curve: Any, path: str | Path, *, accuracy: Any | None = None,
                    title: str | None = None) -> Path:
    """CAM robustness against the L2 budget ε, in three panels, each on its own scale: accuracy (share)
    from the minimal norms (``accuracy``: a frame with ``epsilon`` and ``accuracy`` in [0, 1], optional)
    and the CAM's agreement with the ground truth (``mask_dice``, ``mask_iou``, when present); the
    agreement of the adversarial CAM with the clean one (``cam_dice``, ``cam_iou``, ``cam_spearman``); and
    how far its centre of mass moved (``com_shift_px`` in pixels, else ``com_shift`` as a fraction of the
    image diagonal), from 0 to its own maximum. ``curve`` is the frame of
    :func:`advwsl.evaluation.cams.cam_robustness`. Returns the path."""
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 4.0))
    lines = [(left, accuracy, "accuracy", "accuracy", "black")] if accuracy is not None else []
    lines += [(left, curve, "mask_dice", "CAM vs mask: Dice", "tab:green"),
              (left, curve, "mask_iou", "CAM vs mask: IoU", "tab:olive"),
              (middle, curve, "cam_dice", "Dice(clean CAM, adv CAM)", "tab:blue"),
              (middle, curve, "cam_iou", "IoU(clean CAM, adv CAM)", "tab:orange"),
              (middle, curve, "cam_spearman", "Spearman rank correlation", "tab:purple")]
    shift = "com_shift_px" if "com_shift_px" in curve else "com_shift"
    lines.append((right, curve, shift, "centre-of-mass shift", "tab:red"))
    for k, (ax, frame, key, label, colour) in enumerate(lines):
        if frame is not None and key in frame:
            ax.plot(frame["epsilon"], frame[key], linestyle=LINE_STYLES[k % len(LINE_STYLES)], color=colour,
                    lw=2 if key == "accuracy" else 1.5, marker=None if key == "accuracy" else MARKERS[k],
                    ms=4, mfc="none", markevery=max(1, len(frame) // 10), label=label)
    lowest = float(np.nanmin(curve["cam_spearman"])) if "cam_spearman" in curve and curve["cam_spearman"].notna().any() else 0.0
    left.set(ylabel="share / score", ylim=(0, 1.02), title="prediction and localization")
    middle.set(ylabel="mean over images", ylim=(min(-0.02, lowest - 0.05), 1.02),
               title="agreement with the clean CAM")
    top = float(np.nanmax(curve[shift])) if shift in curve and curve[shift].notna().any() else 0.0
    right.set(ylabel="pixels" if shift == "com_shift_px" else "fraction of the image diagonal",
              ylim=(0, top * 1.15 if top > 0 else 1.0), title="centre-of-mass shift (mean over images)")
    for ax in (left, middle, right):
        ax.set_xlabel("L2 budget epsilon")
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=MIN_FONT)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, 110)


def _slide_panel(ax: Any, thumbnail: Any, values: Any, *, vmin: float, vmax: float, cmap: str, alpha: float,
                 contour: float | None, map_scale: float = 1.0) -> Any:
    """Draw ``values`` (NaN transparent) over ``thumbnail`` on ``ax``, a map pixel spanning ``map_scale``
    thumbnail pixels; returns the map's image for a colour bar."""
    ax.imshow(thumbnail, interpolation="nearest")
    h, w = values.shape
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="nearest",
                      extent=(-0.5, w * map_scale - 0.5, h * map_scale - 0.5, -0.5))
    finite = np.nan_to_num(values, nan=vmin)
    if contour is not None and finite.max() >= contour > finite.min():
        xs, ys = ((np.arange(n) + 0.5) * map_scale - 0.5 for n in (w, h))
        ax.contour(xs, ys, finite, levels=[contour], colors="white", linewidths=0.8)
    ax.set_xlim(-0.5, thumbnail.shape[1] - 0.5)
    ax.set_ylim(thumbnail.shape[0] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def _slide_figsize(thumbnail: Any, panels: int) -> tuple[float, float]:
    h, w = thumbnail.shape[:2]
    panel_w = 6.0
    return panel_w * panels + 1.2, max(2.5, panel_w * h / max(w, 1) + 0.8)


def plot_slide_map(thumbnail: Any, values: Any, path: str | Path, *, label: str = "", title: str | None = None,
                   vmin: float = 0.0, vmax: float = 1.0, cmap: str = CAM_CMAP, alpha: float = 0.5,
                   contour: float | None = None, map_scale: float = 1.0) -> Path:
    """A slide map (h, w) blended over the thumbnail (H, W, 3) uint8, with a colour bar named ``label``; a map
    pixel spans ``map_scale`` thumbnail pixels (its downsample over the thumbnail's: 1 at thumbnail
    resolution, below 1 for a finer map); NaN pixels (off the tiles) show the thumbnail only; ``contour``
    draws the level set at that value. Returns the written path (PNG)."""
    fig, ax = plt.subplots(figsize=_slide_figsize(thumbnail, 1))
    image = _slide_panel(ax, thumbnail, values, vmin=vmin, vmax=vmax, cmap=cmap, alpha=alpha, contour=contour,
                         map_scale=map_scale)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path, 120)


def plot_slide_attack(thumbnail: Any, before: Any, after: Any, path: str | Path, *, label: str = "",
                      titles: Sequence[str] = ("clean", "attacked"), title: str | None = None,
                      vmin: float = 0.0, vmax: float = 1.0, contour: float | None = None,
                      map_scale: float = 1.0) -> Path:
    """Two slide maps side by side on one colour scale (the CAM before and after an attack), each over the
    thumbnail with the contour of its region at ``contour`` and a colour bar. Returns the written path (PNG)."""
    fig, axes = plt.subplots(1, 2, figsize=_slide_figsize(thumbnail, 2))
    for ax, values, name in zip(axes, (before, after), titles):
        image = _slide_panel(ax, thumbnail, values, vmin=vmin, vmax=vmax, cmap=CAM_CMAP, alpha=0.5, contour=contour,
                             map_scale=map_scale)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02, label=label)
        ax.set_title(name, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, 120)


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
    return _save(fig, path, 110)


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


def plot_constant_histogram(constants: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """Figure A V-2: the histogram of log2 of each image's best C&W constant ``c``, one outlined histogram per
    model (``constants``: model name -> array, NaN where C&W found no adversarial), on bins of width 1/2."""
    values = {k: np.log2(np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))]) for k, v in
              constants.items()}
    finite = np.concatenate([v for v in values.values() if v.size]) if any(v.size for v in values.values()) \
        else np.zeros(1)
    low, high = math.floor(finite.min()) - 1, math.ceil(finite.max()) + 1
    bins = np.arange(low, high + 0.5, 0.5)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    for name, v in values.items():
        ax.hist(v, bins=bins, histtype="step", linewidth=1.6, label=f"{name} ({v.size} images)")
    ax.set_xlabel("log2 of the best constant c")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    return _save(fig, path, 120)
