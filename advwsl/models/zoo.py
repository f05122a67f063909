"""Model zoo: a registry of names -> builders, ``create_model``, and checkpoints (safetensors weights plus
a JSON sidecar describing the architecture, its hyper-parameters, the classes, the normalization, the
training configuration, the dataset and the metrics), rebuilt by ``load_model``."""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import AdvwslError, CheckpointError, InputError
from . import heads as _heads
from .backbones import create_backbone
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .small import cw_cifar, cw_mnist, wrn_28_10
from .unet import UNet
from .wsl import WSLClassifier


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry. ``task`` is ``"wsl"`` (logits + CAMs), ``"classification"`` (logits) or
    ``"segmentation"`` (per-pixel logits)."""

    name: str
    task: str
    description: str
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, builder: Callable[..., nn.Module], *, task: str, description: str) -> None:
    """Add a builder to the zoo under ``name`` (builders take keyword arguments and return a model)."""
    if name in _REGISTRY:
        raise InputError(f"a model named {name!r} is already registered")
    if task not in ("wsl", "classification", "segmentation"):
        raise InputError(f"task must be 'wsl', 'classification' or 'segmentation', got {task!r}")
    _REGISTRY[name] = ModelSpec(name, task, description, builder)


def list_models(task: str | None = None) -> list[str]:
    """Registered names (sorted), optionally only those of one task."""
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def model_info(name: str) -> ModelSpec:
    """The zoo entry of ``name``; an unknown name lists the available ones."""
    if name not in _REGISTRY:
        raise InputError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    return _REGISTRY[name]


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise InputError(f"{where}: value {value!r} of type {type(value).__name__} cannot be stored in a "
                     "checkpoint config; use numbers, strings, lists or dicts")


# Build-time options that affect only the initial weights: they are not part of the stored config.
_INIT_ONLY = ("pretrained", "weights")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name (see :func:`list_models`).

    WSL models (``cam``, ``max``, ``lse``, ``wildcat``, ``deepmil``, ``deepmil-gated``,
    ``deepmil-adapted``, ``deepmil-multi``) take ``num_classes=2, backbone="resnet18", stride=32,
    pretrained=False, weights=None, mean=ImageNet, std=ImageNet, backbone_kwargs=None`` and the head's
    hyper-parameters (e.g. ``kmax, kmin, alpha, modalities`` for WILDCAT, ``q`` for LSE, ``dropout`` for
    ``deepmil-multi``). ``unet`` takes ``num_classes, in_channels, base_width, depth``; ``cw-mnist``,
    ``cw-cifar`` and ``wrn-28-10`` take ``num_classes`` and their constructor options.

    The returned model has a ``config`` dict with ``name`` and every resolved argument except
    ``pretrained``/``weights``: ``create_model(**model.config)`` rebuilds the architecture.
    """
    spec = model_info(name)
    try:
        signature = inspect.signature(spec.builder)
        bound = signature.bind(**kwargs)
    except TypeError as exc:
        raise InputError(f"invalid arguments for model {name!r}: {exc}") from None
    bound.apply_defaults()
    try:
        model = spec.builder(*bound.args, **bound.kwargs)
    except AdvwslError:
        raise
    except (TypeError, ValueError) as exc:  # constructor arguments the builder forwarded as given
        raise InputError(f"invalid arguments for model {name!r}: {exc}") from None
    resolved = dict(bound.arguments)
    extra: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = resolved.pop(param.name, None) or {}
    if isinstance(model, WSLClassifier):
        extra = model.config or extra  # the WSL builder resolves the head's defaults itself
    config = {k: v for k, v in {**resolved, **extra}.items() if k not in _INIT_ONLY}
    model.config = {"name": name, **_jsonable(config, f"model {name!r}")}
    return model


# ---------------------------------------------------------------------------------------------------
# WSL models: backbone + head


def _wsl_builder(head_cls: type[nn.Module], fixed: dict[str, Any] | None = None) -> Callable[..., nn.Module]:
    fixed = dict(fixed or {})
    head_params = {
        n: p.default for n, p in inspect.signature(head_cls).parameters.items()
        if n not in ("in_channels", "num_classes") and n not in fixed
    }

    def build(num_classes: int = 2, backbone: str = "resnet18", *, stride: int = 32, pretrained: bool = False,
              weights: str | None = None, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD, backbone_kwargs: dict[str, Any] | None = None,
              **head_kwargs: Any) -> WSLClassifier:
        unknown = sorted(set(head_kwargs) - set(head_params))
        if unknown:
            raise InputError(f"{head_cls.__name__} has no option(s) {unknown}; its options are "
                             f"{sorted(head_params) or 'none'}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InputError(f"num_classes must be a positive int, got {num_classes!r}")
        net = create_backbone(backbone, stride=stride, pretrained=pretrained, weights=weights,
                              **(backbone_kwargs or {}))
        hparams = {**head_params, **head_kwargs}
        head = head_cls(net.out_channels, num_classes, **fixed, **hparams)
        config = {"num_classes": num_classes, "backbone": backbone, "stride": stride, "mean": list(mean),
                  "std": list(std), "backbone_kwargs": dict(backbone_kwargs or {}), **hparams}
        return WSLClassifier(net, head, mean=mean, std=std, config=config)

    build.__doc__ = f"{head_cls.__name__} on a ResNet backbone.\n\n{head_cls.__doc__}"
    return build


for _name, _cls, _fixed, _desc in [
    ("cam", _heads.CAMHead, None, "CAM / global average pooling (eq. 1.2-1.3, 3.1-3.4)"),
    ("max", _heads.MaxHead, None, "max pooling of the CAMs (Oquab et al.)"),
    ("lse", _heads.LSEHead, None, "log-sum-exp pooling, q = 10 (eq. 3.6-3.7)"),
    ("wildcat", _heads.WildcatHead, None, "WILDCAT, k+ = k- = 10 %, alpha = 0.6, M = 4 (eq. 3.8)"),
    ("deepmil", _heads.DeepMILHead, {"gated": False},
     "Deep MIL attention (Ilse et al., eq. 1.4-1.5); per-class (adapted) when num_classes > 2"),
    ("deepmil-gated", _heads.DeepMILHead, {"gated": True},
     "Deep MIL gated attention (eq. 1.6); per-class (adapted) when num_classes > 2"),
    ("deepmil-adapted", _heads.DeepMILHead, {"per_class": True},
     "Deep MIL with one attention and scoring module per class (section 1.3.4)"),
    ("deepmil-multi", _heads.DeepMILMultiHead, None,
     "multi-class / multi-label Deep MIL of chapter 3, dropout d = 0.1 (eq. 3.10-3.11)"),
]:
    register_model(_name, _wsl_builder(_cls, _fixed), task="wsl", description=_desc)


# ---------------------------------------------------------------------------------------------------
# Fully supervised segmentation and the small reference networks


def _unet(num_classes: int = 2, in_channels: int = 3, *, base_width: int = 64, depth: int = 4,
          mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> UNet:
    return UNet(num_classes, in_channels, base_width=base_width, depth=depth, mean=mean, std=std)


register_model("unet", _unet, task="segmentation",
               description="U-Net, the fully supervised bound of chapter 2 (per-pixel logits)")
register_model("cw-mnist", cw_mnist, task="classification",
               description="C&W MNIST CNN (Table A V-7), 28x28 grayscale")
register_model("cw-cifar", cw_cifar, task="classification",
               description="C&W CIFAR-10 CNN (Table A V-7), 32x32 RGB")
register_model("wrn-28-10", wrn_28_10, task="classification",
               description="Wide ResNet 28-10 (Table A V-8), 32x32 RGB")


def describe_models() -> str:
    """One line per zoo model: name, task, description (for ``--help`` texts and error messages)."""
    width = max(len(n) for n in _REGISTRY)
    return "\n".join(f"{n:<{width}}  {_REGISTRY[n].task:<14}  {_REGISTRY[n].description}"
                     for n in list_models())


def config_json(model: nn.Module) -> str:
    """The model's zoo config as JSON (what a checkpoint sidecar stores)."""
    config = getattr(model, "config", None)
    if not config:
        raise InputError(f"{type(model).__name__} has no zoo config; build it with create_model()")
    return json.dumps(config, sort_keys=True)


# ---------------------------------------------------------------------------------------------------
# Checkpoints: <stem>.safetensors + <stem>.json

CHECKPOINT_FORMAT = "advwsl-checkpoint"
CHECKPOINT_VERSION = 1
_SIDECAR_KEYS = ("format", "format_version", "architecture", "task", "kwargs", "normalization", "weights",
                 "sha256", "advwsl_version", "torch_version", "created")


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, sidecar)`` of a checkpoint given as ``stem``, ``stem.safetensors`` or ``stem.json``."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return p, p.with_suffix(".json")
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _normalization(model: nn.Module) -> dict[str, list[float]] | None:
    for module in model.modules():
        if isinstance(module, Normalize):
            return {"mean": [round(v, 6) for v in module.mean.flatten().tolist()],
                    "std": [round(v, 6) for v in module.std.flatten().tolist()]}
    return None


def save_model(model: nn.Module, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None,
               overwrite: bool = False) -> Path:
    """Write ``model``'s weights to ``<stem>.safetensors`` and a JSON sidecar ``<stem>.json``.

    The sidecar holds the architecture (zoo name), its constructor arguments, the normalization, the
    SHA-256 of the weights, versions, and ``metadata``: by convention ``classes`` (list of names, one per
    class), ``training`` (config), ``dataset`` and ``metrics``; any other JSON-serializable key is kept.
    Existing files are never replaced unless ``overwrite=True``. Returns the weights path.
    """
    config = getattr(model, "config", None)
    if not config or "name" not in config:
        raise InputError(f"{type(model).__name__} has no zoo config; build it with create_model() so that "
                         "load_model() can rebuild it")
    metadata = dict(metadata or {})
    clash = sorted(set(metadata) & set(_SIDECAR_KEYS))
    if clash:
        raise InputError(f"metadata keys {clash} are reserved by the checkpoint format; rename them")
    classes = metadata.get("classes")
    num_classes = getattr(model, "num_classes", None)
    if classes is not None and num_classes is not None and len(classes) != num_classes:
        raise InputError(f"metadata classes has {len(classes)} names but the model has {num_classes} classes")
    weights, sidecar = checkpoint_paths(path)
    existing = [str(p) for p in (weights, sidecar) if p.exists()]
    if existing and not overwrite:
        raise CheckpointError(f"{', '.join(existing)} already exist(s); choose another path or pass "
                              "overwrite=True")
    info = {
        "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
        "architecture": config["name"], "task": model_info(config["name"]).task,
        "kwargs": {k: v for k, v in config.items() if k != "name"},
        "normalization": _normalization(model),
        **_jsonable(metadata, "metadata"),
    }
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    weights.parent.mkdir(parents=True, exist_ok=True)
    tmp_weights = weights.with_name(weights.name + ".tmp")
    tmp_sidecar = sidecar.with_name(sidecar.name + ".tmp")
    try:
        save_file(state, str(tmp_weights), metadata={"format": CHECKPOINT_FORMAT})
        info.update(weights=weights.name, sha256=_sha256(tmp_weights), advwsl_version=__version__,
                    torch_version=torch.__version__,
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        tmp_sidecar.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        os.replace(tmp_weights, weights)
        os.replace(tmp_sidecar, sidecar)
    finally:
        for tmp in (tmp_weights, tmp_sidecar):
            tmp.unlink(missing_ok=True)
    return weights


def checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of a checkpoint, validated (format, architecture known, weights file present)."""
    weights, sidecar = checkpoint_paths(path)
    if not sidecar.is_file():
        hint = f" (found weights {weights})" if weights.is_file() else ""
        raise CheckpointError(f"checkpoint sidecar {sidecar} is missing{hint}; a checkpoint is the pair "
                              "<stem>.safetensors + <stem>.json written by save_model")
    try:
        info = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint sidecar {sidecar} is not valid JSON ({exc}); it may be "
                              "truncated, save the model again") from None
    if not isinstance(info, dict) or info.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{sidecar} is not an advwsl checkpoint sidecar (no format "
                              f"{CHECKPOINT_FORMAT!r})")
    if info.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{sidecar} has format version {info.get('format_version')}, newer than this "
                              f"advwsl ({CHECKPOINT_VERSION}); upgrade advwsl")
    if info.get("architecture") not in _REGISTRY:
        raise CheckpointError(f"{sidecar} is for architecture {info.get('architecture')!r}, which this advwsl "
                              f"does not know; available: {', '.join(list_models())}")
    if not weights.is_file():
        raise CheckpointError(f"checkpoint weights {weights} are missing (sidecar {sidecar} exists)")
    return info


def load_model(path: str | os.PathLike, *, architecture: str | None = None, verify: bool = True) -> nn.Module:
    """Rebuild a model saved by :func:`save_model`, on the CPU and in eval mode.

    ``architecture`` (a zoo name) makes loading a checkpoint of another architecture an error.
    ``verify`` checks the weights' SHA-256 against the sidecar (catches truncated or modified files).
    Every failure is a :class:`CheckpointError` saying which file and why.
    """
    weights, sidecar = checkpoint_paths(path)
    info = checkpoint_info(path)
    name = info["architecture"]
    if architecture is not None and architecture != name:
        raise CheckpointError(f"{weights} holds a {name!r} model, not {architecture!r}")
    if verify and info.get("sha256") and _sha256(weights) != info["sha256"]:
        raise CheckpointError(f"{weights} does not match the checksum in {sidecar}: the file is truncated or "
                              "was modified; restore it or save the model again")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error type for truncated headers/data
        raise CheckpointError(f"could not read {weights} ({exc}); the file is truncated or not safetensors") \
            from None
    try:
        model = create_model(name, **info.get("kwargs", {}))
    except (AdvwslError, TypeError) as exc:
        raise CheckpointError(f"{sidecar} describes a {name!r} model this advwsl cannot build: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:4]
        raise CheckpointError(f"the weights in {weights} do not fit a {name!r} model with "
                              f"{info.get('kwargs')}: {' '.join(first)}; the file belongs to another "
                              "architecture") from None
    return model.eval()
