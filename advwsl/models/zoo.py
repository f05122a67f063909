"""Model zoo: the registry of architectures (names -> builders) and ``create_model``.

Architectures register where they are defined: each pooling head registers a weakly supervised model
(backbone + head; :func:`register_head`, in :mod:`advwsl.models.heads`), the reference's small networks in
:mod:`advwsl.models.small`, the U-Net in :mod:`advwsl.models.unet`. Checkpoints are in
:mod:`advwsl.models.checkpoints`."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import AdvwslError, InputError
from ..io import to_jsonable
from ..registry import Registry
from .wsl import WSLClassifier, wsl_builder

__all__ = ["ModelSpec", "TASKS", "register_model", "register_head", "list_models", "model_info", "create_model",
           "describe_models", "config_json"]

TASKS = ("wsl", "classification", "segmentation")


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry. ``task`` is ``"wsl"`` (logits + CAMs), ``"classification"`` (logits) or
    ``"segmentation"`` (per-pixel logits)."""

    name: str
    task: str
    description: str
    builder: Callable[..., nn.Module]


_MODELS: Registry[ModelSpec] = Registry("model")


def register_model(name: str, *, task: str, description: str) -> Callable[[Callable[..., nn.Module]],
                                                                          Callable[..., nn.Module]]:
    """Decorator adding a builder (keyword arguments -> model) to the zoo under ``name``::

        @register_model("cw-mnist", task="classification", description="C&W MNIST CNN (Table A V-7)")
        def cw_mnist(num_classes: int = 10, ...) -> nn.Module: ...
    """
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS.register(name, ModelSpec(name, task, description, builder))
        return builder

    return add


def register_head(name: str, head_cls: type[nn.Module], *, description: str,
                  fixed: dict[str, Any] | None = None, model_cls: type[WSLClassifier] = WSLClassifier
                  ) -> type[nn.Module]:
    """Register the weakly supervised model ``name``: a backbone with the pooling head ``head_cls``
    (constructor options ``fixed`` set, the others exposed as model options; see
    :func:`advwsl.models.wsl.wsl_builder`), built as a ``model_cls``. Returns ``head_cls``."""
    register_model(name, task="wsl", description=description)(wsl_builder(head_cls, fixed, model_cls=model_cls))
    return head_cls


def list_models(task: str | None = None) -> list[str]:
    """Registered names (sorted), optionally only those of one task."""
    return [n for n in _MODELS.names() if task is None or _MODELS.get(n).task == task]


def model_info(name: str) -> ModelSpec:
    """The zoo entry of ``name``; an unknown name lists the available ones."""
    return _MODELS.get(name)


# Build-time options that affect only the initial weights: they are not part of the stored config.
_INIT_ONLY = ("pretrained", "weights")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo model by name (see :func:`list_models`).

    WSL models (``cam``, ``max``, ``lse``, ``wildcat``, ``deepmil``, ``deepmil-gated``,
    ``deepmil-adapted``, ``deepmil-multi``) take ``num_classes=2, backbone="resnet18", stride=32,
    pretrained=False, weights=None, mean=None, std=None`` (None: the backbone's, ImageNet's for the ResNets),
    ``backbone_kwargs=None`` and the head's hyper-parameters (e.g. ``kmax, kmin, alpha, modalities`` for WILDCAT, ``q`` for LSE, ``dropout`` for
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
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise InputError(f"invalid arguments for model {name!r} ({given}): {exc}") from None
    resolved = dict(bound.arguments)
    extra: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = resolved.pop(param.name, None) or {}
    if isinstance(model, WSLClassifier):
        extra = model.config or extra  # the WSL builder resolves the head's defaults itself
    config = {k: v for k, v in {**resolved, **extra}.items() if k not in _INIT_ONLY}
    model.config = {"name": name, **to_jsonable(config, strict=True, where=f"model {name!r}")}
    return model


def describe_models() -> str:
    """One line per zoo model: name, task, description (for ``--help`` texts and error messages)."""
    width = max(len(n) for n in list_models())
    return "\n".join(f"{n:<{width}}  {model_info(n).task:<14}  {model_info(n).description}" for n in list_models())


def config_json(model: nn.Module) -> str:
    """The model's zoo config as JSON (what a checkpoint sidecar stores)."""
    config = getattr(model, "config", None)
    if not config:
        raise InputError(f"{type(model).__name__} has no zoo config; build it with create_model()")
    return json.dumps(config, sort_keys=True)
