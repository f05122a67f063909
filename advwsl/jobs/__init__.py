"""What each command does, callable from Python: a job takes its typed config (:mod:`advwsl.config`),
resolves it into a plan before any work, and writes a run directory — ``attack_job``
(:mod:`.attack`), ``robustness_job`` / ``merge_job`` (:mod:`.robustness`), ``train_job`` (:mod:`.train`),
``adv_train_job`` (:mod:`.adv_train`), ``evaluate_job`` (:mod:`.evaluate`), ``slide_predict_job`` /
``slide_attack_job`` (:mod:`.slide`). :mod:`.data` holds the one data resolver of the evaluation jobs."""

from ..pretrained import ResolvedModel, resolve_model
from .data import EvalData, data_for_model, load_data

__all__ = ["EvalData", "ResolvedModel", "data_for_model", "load_data", "resolve_model"]
