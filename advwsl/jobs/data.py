"""The evaluation data of the commands, resolved once: a registered dataset (:func:`advwsl.data.get_dataset`)
split as tensors, with masks when the dataset has them, class names and a description. Without
``--dataset``, a model's own data: the dataset a built-in model or a checkpoint was trained on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data import eval_transform, get_dataset, get_dataset_spec
from ..errors import ConfigError, DatasetError, InputError, ModelError
from ..utils import seed_everything, select_device
from .builtin import ResolvedModel, resolve_model

__all__ = ["EvalData", "load_data", "data_for_model", "check_data_fits_model", "ModelDataConfig"]


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


def check_data_fits_model(data: EvalData, resolved: ResolvedModel) -> None:
    """Catch, before any work, a model that cannot be evaluated on ``data``: labels beyond its classes."""
    n = resolved.num_classes
    top = int(data.labels.max())
    if n is not None and top >= n:
        raise ModelError(f"{resolved.name} has {n} classes but {data.description} has labels up to {top} "
                         f"({len(data.classes) if data.classes else top + 1} classes); evaluate it on the data it was "
                         "trained for")


@dataclass
class ModelDataConfig:
    """The model and the data of an evaluation job (``advwsl attack``, ``advwsl evaluate-robustness``), the
    first fields of its configuration: ``model`` (built-in, checkpoint path, zoo architecture with
    ``checkpoint``) and the first ``n_samples`` of ``split`` of ``dataset`` (default: the data the model was
    trained on). The methods also read ``batch_size``, ``seed``, ``device``, ``progress`` and ``retrain``,
    fields of the jobs' configurations that follow these."""

    model: str = "digits-cnn"
    checkpoint: str | None = None
    dataset: str | None = None
    data_root: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    split: str = "test"
    n_samples: int | None = None

    def check_counts(self) -> None:
        """Raise :class:`ConfigError` unless ``--batch-size`` and ``--n-samples`` (None: all) are positive
        integers."""
        for name, value in (("--batch-size", self.batch_size), ("--n-samples", self.n_samples)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    def start(self, log: Callable[[str], None]) -> tuple[torch.device, ResolvedModel]:
        """Seed everything, select the device and resolve the model (a built-in model not cached yet is
        trained now); returns the device and the model."""
        seed_everything(self.seed)
        device = select_device(self.device)
        resolved = resolve_model(self.model, checkpoint=self.checkpoint, progress=self.progress, log=log,
                                 retrain=self.retrain)
        return device, resolved

    def load_data(self, resolved: ResolvedModel) -> EvalData:
        """The evaluation data for ``resolved`` (:func:`data_for_model`), checked against its classes."""
        data = data_for_model(resolved, self.dataset, split=self.split, data_root=self.data_root,
                              n_samples=self.n_samples, dataset_kwargs=self.dataset_kwargs, progress=self.progress)
        check_data_fits_model(data, resolved)
        return data
