"""The job behind ``advwsl evaluate``: a checkpoint re-evaluated on a split (default: the dataset and fold
it was trained on) with the training loop's own evaluation: accuracy, AP / mAP and, with masks, the CAM
Dice / IoU under the checkpoint's CAM rule (or the one asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..classes import match_classes
from ..config import EvaluateConfig
from ..data import eval_transform, get_dataset
from ..data.base import dataset_classes
from ..errors import ConfigError
from ..io import atomic_write_text, markdown_table, write_json
from ..losses import build_criterion
from ..models import checkpoint_info, list_models, load_model
from ..models.checkpoints import checkpoint_classes
from ..report_html import write_html_report
from ..runs import check_out, run_directory
from ..training import check_cam_class, evaluate
from ..utils import select_device

__all__ = ["EvaluateConfig", "evaluate_job"]


def _records(config: EvaluateConfig) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The checkpoint's sidecar, its training configuration and the dataset record it was trained on."""
    info = checkpoint_info(config.checkpoint)
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    recorded = info.get("dataset") if isinstance(info.get("dataset"), dict) else {}
    return info, training, recorded


def _data(config: EvaluateConfig, training: dict[str, Any], recorded: dict[str, Any]) -> tuple[Any, str, int]:
    dataset = config.dataset or recorded.get("name") or training.get("dataset")
    if not dataset:
        raise ConfigError(f"{config.checkpoint} does not record its dataset; pass --dataset")
    fold = config.fold if config.fold is not None else recorded.get("fold", 0)
    kwargs = dict(training.get("dataset_kwargs", {})) if dataset == training.get("dataset") else {}
    data = get_dataset(dataset, root=config.data_root or training.get("data_root"), split=config.split, fold=fold,
                       transform=eval_transform(dataset), **kwargs)
    return data, dataset, fold


def _check_classes(config: EvaluateConfig, model: Any, info: dict[str, Any], training: dict[str, Any], data: Any,
                   dataset: str) -> str:
    """A model evaluated on data of other classes (count, or labels beyond its classes) is refused; returns
    the CAM class as the evaluation reads it (a class name resolved to its index)."""
    cam_class = config.cam_class if config.cam_class is not None else training.get("cam_class", "true")
    num_classes = getattr(model, "num_classes", None) or len(info.get("classes") or []) or None
    if not num_classes or training.get("model") in list_models("segmentation"):
        return str(cam_class)
    data_classes = dataset_classes(data)
    labels = getattr(data, "labels", None)
    top = int(np.asarray(labels).max()) if labels is not None and len(labels) else None
    if (data_classes is not None and len(data_classes) != num_classes) or (top is not None and top >= num_classes):
        n_data = len(data_classes) if data_classes is not None else top + 1
        raise ConfigError(f"{config.checkpoint} has {num_classes} classes but {dataset} ({config.split} split) has "
                          f"{n_data}; evaluate it on the data it was trained for")
    return check_cam_class(cam_class, int(num_classes), name="--cam-class", what="model",
                           classes=info.get("classes") or data_classes)


class _Relabelled(torch.utils.data.Dataset):
    """A dataset whose labels are mapped to a model's classes by name (``index[label]``)."""

    def __init__(self, data: Any, index: list[int]) -> None:
        self.data, self.index = data, index
        for name in ("region_classes", "variable_size"):
            if hasattr(data, name):
                setattr(self, name, getattr(data, name))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Any:
        sample = self.data[i]
        return {**sample, "label": self.index[int(sample["label"])]}


#: How ``advwsl evaluate`` names its CAM measures (fractions in [0, 1], as ``advwsl attack`` reports them:
#: ``mdice_positive`` is the attack report's "Dice vs mask" of the lesion images).
CAM_MEASURES = {"mdice_positive": "CAM Dice vs mask, mean over lesion images",
                "dice": "CAM Dice vs mask, mean over all images (0 where the mask is empty)",
                "dice_pixels": "CAM Dice vs mask, over all pixels", "iou": "CAM IoU vs mask, mean over all images",
                "miou": "CAM mIoU (pixel classes)", "dice_combined": "CAM Dice of eq. 4.14"}


def metrics_markdown(metrics: dict[str, float], cam_rule: str, cam_class: str) -> str:
    """``metrics.md``: classification measures in percent, CAM measures as fractions with the rule that
    binarized the maps (the numbers ``advwsl attack --cam-rule`` reports for the same rule)."""
    rows = [[k, f"{100 * v:.2f} %"] for k, v in metrics.items() if k in ("accuracy", "ap", "map")]
    rows += [[f"{label} (rule {cam_rule}, CAM of class {cam_class})", f"{metrics[k]:.3f}"]
             for k, label in CAM_MEASURES.items() if k in metrics]
    rows += [[k, f"{v:.3f}"] for k, v in metrics.items()
             if k not in CAM_MEASURES and k not in ("accuracy", "ap", "map", "n", "n_images", "loss")]
    return markdown_table(["measure", "value"], rows)


def evaluate_job(config: EvaluateConfig) -> tuple[Path, dict[str, float]]:
    """Accuracy, AP / mAP and, with masks, the CAM Dice / IoU of a checkpoint; writes ``metrics.json`` and
    ``metrics.md``. Returns the run directory and the metrics (shares in [0, 1])."""
    device = select_device(config.device)
    check_out(config.out, command="evaluate")
    info, training, recorded = _records(config)
    data, dataset, fold = _data(config, training, recorded)
    model = load_model(config.checkpoint)
    cam_class = _check_classes(config, model, info, training, data, dataset)
    if training.get("model") not in list_models("segmentation"):
        index = match_classes(checkpoint_classes(info), dataset_classes(data), remap=config.remap_classes,
                              option="--remap-classes")
        data = _Relabelled(data, index) if index is not None else data
    model = model.to(device)
    criterion = build_criterion(training.get("loss", "image"), **training.get("loss_kwargs", {}))
    if info.get("loss_state"):
        criterion.load_state_dict({k: torch.tensor(v) for k, v in info["loss_state"].items()})
    settings = {"cam_rule": config.cam_rule or training.get("cam_rule", "zero"),
                "cam_class": cam_class}
    extra = {"region_classes": getattr(data, "region_classes", None), "tta": bool(training.get("tta", False))}
    record = {"checkpoint": str(config.checkpoint), "dataset": dataset, "split": config.split, "fold": fold,
              **settings}
    with run_directory("evaluate", config.out, config=record) as run_dir:
        batch = 1 if getattr(data, "variable_size", False) else config.batch_size  # GlaS: whole images of many sizes
        metrics = evaluate(model, DataLoader(data, batch_size=batch), criterion=criterion.to(device),
                           progress=config.progress, desc=f"evaluate {config.split}", **settings, **extra)
        write_json(run_dir / "metrics.json", {**metrics, "cam_rule": settings["cam_rule"],
                                              "cam_class": settings["cam_class"]})
        atomic_write_text(run_dir / "metrics.md", metrics_markdown(metrics, settings["cam_rule"], settings["cam_class"]))
        write_html_report(run_dir, f"advwsl evaluate: {config.checkpoint} on {dataset} ({config.split})")
    return run_dir, metrics
