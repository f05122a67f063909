"""Evaluation: metrics (:mod:`.metrics`), clean accuracy of any model (:mod:`.accuracy`), CAM robustness
(:mod:`.cams`), robustness tables and curves (:mod:`.robustness`, :mod:`.robustness_report`) and sanity
checks (:mod:`.sanity`)."""

from .accuracy import clean_accuracy
from .robustness import evaluate_robustness
from .robustness_report import RobustnessReport

__all__ = ["RobustnessReport", "clean_accuracy", "evaluate_robustness"]
