"""What every figure of :mod:`advwsl.plotting` shares: the smallest font, the palette of curves, the colour
map of CAMs, and how a figure is laid out and written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np



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


def _percent(value: float) -> str:
    """A share in percent for a legend: one decimal below 10 % (one image in 196 is 0.5 %, not 0 %)."""
    return f"{value:.1f} %" if 0 < value < 10 else f"{value:.0f} %"
