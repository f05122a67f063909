"""The evaluation data of the commands, resolved once: a registered dataset (:func:`advwsl.data.get_dataset`)
split as tensors, with masks when the dataset has them, class names and a description. Without
``--dataset``, a model's own data: the dataset a built-in model or a checkpoint was trained on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ..classes import match_classes
from ..config import ModelDataConfig
from ..data import eval_transform, get_dataset, get_dataset_spec
from ..errors import ConfigError, DatasetError, InputError, ModelError
from ..utils import seed_everything, select_device
from ..pretrained import ResolvedModel, resolve_model

__all__ = ["EvalData", "load_data", "data_for_model", "check_data_fits_model", "start", "job_data"]


@dataclass
class EvalData:
    """Images ``(N, C, H, W)`` in [0, 1], labels ``(N,)``, masks ``(N, H, W)`` or None, class names (or
    None), the dataset name and options, the split, and a one-line description."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    classes: list[str] | None
    dataset: str
    dataset_kwargs: dict[str, Any]
    split: str
    description: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: torch.Tensor) -> EvalData:
        """The samples where the boolean mask ``keep`` is true (in order)."""
        return dataclasses.replace(self, images=self.images[keep], labels=self.labels[keep],
                                   masks=self.masks[keep] if self.masks is not None else None,
                                   description=f"{self.description} ({int(keep.sum())} of {len(self)} images)")

    def describe(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "dataset_kwargs": self.dataset_kwargs, "split": self.split,
                "n_samples": len(self), "has_masks": self.masks is not None, "description": self.description}


def _sample(data: Any, i: int, name: str) -> dict[str, Any]:
    try:
        item = data[i]
    except (DatasetError, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - an unreadable file: name it instead of a traceback
        where = getattr(data, "table", None)
        path = where.iloc[i].get("path") if where is not None and hasattr(where, "iloc") else None
        raise DatasetError(f"cannot read sample {i} of dataset {name!r}{f' ({path})' if path else ''}: "
                           f"{type(exc).__name__}: {exc}; fix or remove that file") from None
    return item if isinstance(item, dict) else {"image": item[0], "label": item[1]}


def load_data(dataset: str, *, split: str = "test", data_root: str | None = None, n_samples: int | None = None,
              dataset_kwargs: dict[str, Any] | None = None, progress: bool = False) -> EvalData:
    """The first ``n_samples`` samples (all when None) of split ``split`` of ``dataset`` as tensors."""
    if n_samples is not None and (isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1):
        raise ConfigError(f"--n-samples must be a positive integer, got {n_samples!r}")
    spec = get_dataset_spec(dataset)
    if spec.multilabel:
        raise ConfigError(f"dataset {spec.name!r} is multi-label; attacks and robustness evaluation need one "
                          "class per image")
    kwargs = dict(dataset_kwargs or {})
    try:
        data = get_dataset(spec.name, root=data_root, split=split, transform=eval_transform(spec.name), **kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid --dataset-kwargs for {spec.name!r}: {exc}") from None
    count = len(data) if n_samples is None else min(int(n_samples), len(data))
    if count == 0:
        raise DatasetError(f"dataset {spec.name!r} split {split!r} is empty; check --data-root and --split")
    items = [_sample(data, i, spec.name) for i in tqdm(range(count), desc=f"load {spec.name} {split}", unit="img",
                                                       disable=not progress or count < 256, leave=False)]
    shapes = sorted({tuple(it["image"].shape) for it in items})
    if len(shapes) > 1:
        raise DatasetError(f"dataset {spec.name!r} has images of several sizes ({', '.join(map(str, shapes[:3]))}"
                           f"{', ...' if len(shapes) > 3 else ''}); attacks batch whole images, so use a split of "
                           "equal-sized images (e.g. prepared patches or tiles)")
    images = torch.stack([torch.as_tensor(it["image"]).float() for it in items])
    labels = torch.tensor([int(it["label"]) for it in items])
    masks = None
    if all(it.get("mask") is not None for it in items):
        masks = torch.stack([torch.as_tensor(it["mask"]).float().reshape(images.shape[-2:]) for it in items])
    classes = getattr(data, "classes", None) or spec.classes
    return EvalData(images, labels, masks, list(classes) if classes is not None else None, spec.name, kwargs, split,
                    f"{spec.name}, {split} split")


def _same_dataset(a: str, b: str) -> bool:
    try:
        return get_dataset_spec(a).name == get_dataset_spec(b).name
    except InputError:  # a dataset this advwsl does not know (registered by other code)
        return a == b


def data_for_model(resolved: ResolvedModel, dataset: str | None = None, **kwargs: Any) -> EvalData:
    """``dataset`` (see :func:`load_data`), or without it the data ``resolved`` was trained on. On the data
    it was trained on, the options (e.g. a folder dataset's ``size``) and the folder it recorded are the
    defaults of ``dataset_kwargs`` and ``data_root``."""
    if dataset is None:
        if resolved.dataset is None:
            raise ConfigError(f"{resolved.name} does not record the dataset it was trained on; pass --dataset")
        dataset = resolved.dataset
    if resolved.dataset is not None and _same_dataset(dataset, resolved.dataset):
        kwargs["dataset_kwargs"] = {**resolved.dataset_kwargs, **(kwargs.get("dataset_kwargs") or {})}
        if kwargs.get("data_root") is None and resolved.data_root is not None:
            kwargs["data_root"] = resolved.data_root
    data = load_data(dataset, **kwargs)
    if data.classes is None and resolved.classes:
        data.classes = resolved.classes
    return data


def check_data_fits_model(data: EvalData, resolved: ResolvedModel, *, remap: bool = False) -> EvalData:
    """Catch, before any work, a model that cannot be evaluated on ``data``: labels beyond its classes, or
    class names that differ from the model's (:func:`advwsl.classes.match_classes`: classes are matched by
    name, never by position). With ``remap`` (``--remap-classes``) the same names in another order are
    accepted and the labels mapped to the model's classes; returns the data as the model reads it."""
    n = resolved.num_classes
    top = int(data.labels.max())
    if n is not None and top >= n:
        raise ModelError(f"{resolved.name} has {n} classes but {data.description} has labels up to {top} "
                         f"({len(data.classes) if data.classes else top + 1} classes); evaluate it on the data it was "
                         "trained for")
    index = match_classes(resolved.classes or n, data.classes, remap=remap, option="--remap-classes")
    if index is None:
        return data
    return dataclasses.replace(data, labels=torch.as_tensor(index)[data.labels], classes=list(resolved.classes),
                               description=f"{data.description} (classes mapped to the model's by name)")


def start(config: ModelDataConfig, log: Callable[[str], None]) -> tuple[torch.device, ResolvedModel]:
    """Seed everything, select the device and resolve the model of an evaluation job (a built-in model not
    cached yet is trained now); returns the device and the model."""
    seed_everything(config.seed)
    device = select_device(config.device)
    resolved = resolve_model(config.model, checkpoint=config.checkpoint, progress=config.progress, log=log,
                             retrain=config.retrain)
    return device, resolved


def job_data(config: ModelDataConfig, resolved: ResolvedModel) -> EvalData:
    """The evaluation data of an evaluation job for ``resolved`` (:func:`data_for_model`), checked against
    its classes."""
    data = data_for_model(resolved, config.dataset, split=config.split, data_root=config.data_root,
                          n_samples=config.n_samples, dataset_kwargs=config.dataset_kwargs, progress=config.progress)
    return check_data_fits_model(data, resolved, remap=config.remap_classes)
