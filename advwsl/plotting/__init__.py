"""All matplotlib code of advwsl (figures are written to files; the non-interactive Agg backend is used).
Text in figures is at least 8 pt; maps use a perceptually uniform colour map (:data:`CAM_CMAP`) with a colour
bar; every curve of a figure has its own colour, line style and marker, and every axis covers its data."""

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere below: figures go to files

from ._base import CAM_CMAP, LINE_STYLES, MARKERS, MIN_FONT  # noqa: E402
from .curves import (plot_cam_curves, plot_constant_histogram, plot_learning_curves,  # noqa: E402
                     plot_robustness_curves, plot_sweep)
from .images import (grid_examples, plot_adversarial_examples, plot_cam_grid, plot_defense_examples,  # noqa: E402
                     plot_perturbations, save_cam_overlays)
from .slides import plot_slide_attack, plot_slide_map  # noqa: E402

__all__ = ["MIN_FONT", "plot_learning_curves", "LINE_STYLES", "MARKERS", "CAM_CMAP", "plot_robustness_curves", "grid_examples", "plot_cam_grid", "plot_cam_curves", "plot_slide_map", "plot_slide_attack", "plot_adversarial_examples", "save_cam_overlays", "plot_sweep", "plot_defense_examples", "plot_perturbations", "plot_constant_histogram"]
