"""The dataset registry: one :class:`DatasetSpec` per dataset, registered in the dataset's own module.

A spec holds what the rest of advwsl needs to know, so that no caller tests dataset names: how to build
a split (``factory``), whether it needs a folder on disk (``--data-root``), its classes, whether samples
carry pixel masks, whether labels are multi-label, its splits and folds, and its training augmentation and
evaluation transform (section 2.1.3.1). Adding a dataset is one module plus one :func:`register_dataset`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..errors import AdvwslError, ConfigError, DatasetError, InputError
from ..registry import Registry
from .transforms import Compose, Transform

__all__ = ["DatasetSpec", "register_dataset", "get_dataset_spec", "list_datasets", "get_dataset",
           "training_transform", "eval_transform"]


def _no_transform() -> Transform:
    return Compose([])


@dataclass(frozen=True)
class DatasetSpec:
    """What advwsl knows about one dataset (see the module docstring).

    ``factory(root, split, fold=..., transform=..., **options) -> Dataset`` builds one split; samples are
    dicts ``{"image": float32 (C, H, W) in [0, 1], "label", "mask" (when ``has_masks``), "index", ...}``.
    ``classes`` is None when it depends on the options (e.g. the synthetic set's ``num_classes``).
    ``train_transform`` / ``eval_transform`` build the joint image + mask transforms (a ``train_transform``
    with a random crop takes its side as an optional argument).
    A dataset whose masks are the region of the image's own class has a ``region_classes`` attribute on its
    instances: the classes whose images carry a region (GlaS: benign and malignant glands; CAMELYON16:
    metastatic), read by the evaluation of eq. 4.14.
    ``split_table(root, fold=..., n_folds=..., seed=..., **options) -> DataFrame`` (datasets whose folds
    advwsl draws itself) gives the train/valid/test assignment of one fold, exported by ``advwsl data folds``.
    ``image_size`` is the side of its (square) images when fixed: models that take an ``input_size`` are
    built for it. ``adversarial_recipe`` holds the training options ``advwsl adv-train`` uses on it when no
    ``--preset`` is given (and ``clean_epochs``, the clean epochs before the adversarial ones)."""

    name: str
    factory: Callable[..., Dataset]
    description: str
    needs_root: bool
    classes: tuple[str, ...] | None = None
    has_masks: bool = False
    multilabel: bool = False
    splits: tuple[str, ...] = ("train", "valid", "test")
    folds: int = 5
    layout: str = ""
    train_transform: Callable[[], Transform] = _no_transform
    eval_transform: Callable[[], Transform] = _no_transform
    options: dict[str, str] = field(default_factory=dict)
    split_table: Callable[..., Any] | None = None
    image_size: int | None = None
    adversarial_recipe: dict[str, Any] = field(default_factory=dict)
    epsilons: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    table_epsilon: float = 0.5


_DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    """Make ``spec`` available to :func:`get_dataset` and every ``--dataset`` option."""
    return _DATASETS.register(spec.name, spec, overwrite=overwrite)


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of ``name`` (case, ``-`` and ``_`` ignored: ``CIFAR-10`` is ``cifar10``)."""
    if isinstance(name, str) and name not in _DATASETS:
        matches = [n for n in _DATASETS.names() if _key(n) == _key(name)]
        if len(matches) == 1:
            name = matches[0]
    return _DATASETS.get(name)


def list_datasets() -> dict[str, str]:
    """Registered dataset names with a one-line description."""
    return {n: _DATASETS.get(n).description for n in _DATASETS.names()}


def get_dataset(name: str, root: str | Path | None = None, split: str = "train", *, fold: int = 0,
                transform: Callable[[dict], dict] | None = None, **kwargs: Any) -> Dataset:
    """The dataset ``name`` (see :func:`list_datasets`) at ``root``, split ``train`` / ``valid`` / ``test``
    of fold ``fold``. Extra keyword arguments go to the dataset (e.g. ``magnification=40`` for BreakHis,
    ``size=64`` / ``num_classes=4`` for synthetic, ``image_size=299`` for ImageNet)."""
    spec = get_dataset_spec(name)
    if spec.needs_root and root is None:
        layout = f"; expected layout: {spec.layout}" if spec.layout else ""
        raise DatasetError(f"dataset {spec.name!r} needs its folder: pass root (--data-root DIR){layout}")
    if split not in spec.splits:
        raise InputError(f"dataset {spec.name!r} has the splits {', '.join(spec.splits)}, got {split!r}")
    if spec.folds and not 0 <= int(fold) < spec.folds:
        raise InputError(f"dataset {spec.name!r} has folds 0..{spec.folds - 1}, got fold {fold}")
    try:
        return spec.factory(root, split, fold=fold, transform=transform, **kwargs)
    except AdvwslError:
        raise
    except (TypeError, ValueError) as exc:
        if not kwargs:
            raise
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if unknown and unknown[1] in kwargs:
            raise InputError(f"dataset {spec.name!r} has no option {unknown[1]!r} (given {kwargs[unknown[1]]!r}); "
                             f"{dataset_options(spec.name)}") from None
        raise InputError(f"dataset {spec.name!r} rejects the options {kwargs}: {exc}; "
                         f"{dataset_options(spec.name)}") from None


def dataset_options(name: str) -> str:
    """What options ``name`` takes, in words (for error messages): the keyword parameters of its factory, or
    the options its spec documents."""
    spec = get_dataset_spec(name)
    target = spec.factory
    params = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()) and not spec.options:
        return "see its documentation for the options it takes"
    if spec.options:
        return "it takes " + ", ".join(f"{k} ({v})" for k, v in spec.options.items())
    names = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and
                                                                          n not in ("root", "split", "self"))]
    names = [n for n in names if n not in ("fold", "transform")]
    return "it takes " + (", ".join(names) if names else "no options")


def training_transform(dataset: str, *, crop_size: int | None = None) -> Transform:
    """The training augmentation of ``dataset`` (sections 2.1.3.1, 3.4.2, 4.4.2), from its spec;
    ``crop_size`` replaces the side of its random crop (GlaS: 416 in chapter 2, 448 in chapter 4)."""
    spec = get_dataset_spec(dataset)
    if crop_size is None:
        return spec.train_transform()
    if not inspect.signature(spec.train_transform).parameters:
        raise ConfigError(f"{spec.name} trains on whole images (its augmentation has no random crop); drop "
                          f"crop_size {crop_size}")
    return spec.train_transform(int(crop_size))


def eval_transform(dataset: str) -> Transform:
    """The evaluation transform of ``dataset`` (whole images, sections 2.1.3.1 and 4.4.2; VOC is resized to
    448 x 448 so that images can be batched, section 3.4.2), from its spec."""
    return get_dataset_spec(dataset).eval_transform()
