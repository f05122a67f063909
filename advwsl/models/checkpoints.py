"""Checkpoints: the weights in ``<stem>.safetensors`` and a JSON sidecar ``<stem>.json`` describing the
architecture (zoo name and constructor arguments), the normalization, the classes, the training
configuration, the dataset and the metrics; :func:`load_model` rebuilds the model from them."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import __version__
from ..errors import AdvwslError, CheckpointError, InputError
from ..io import atomic_path, to_jsonable
from .normalize import Normalize
from .zoo import create_model, list_models, model_info

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "checkpoint_paths", "save_model", "checkpoint_info",
           "checkpoint_classes", "load_model"]

CHECKPOINT_FORMAT = "advwsl-checkpoint"
CHECKPOINT_VERSION = 1
_SIDECAR_KEYS = ("format", "format_version", "architecture", "task", "kwargs", "normalization", "weights",
                 "sha256", "architecture_sha256", "advwsl_version", "torch_version", "created")


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


#: Sidecar fields that decide what the weights compute; their hash is stored, so an edited sidecar
#: (another head, stride or class list) is caught instead of silently changing the model's outputs.
_ARCHITECTURE_FIELDS = ("architecture", "task", "kwargs", "normalization", "classes")


def _architecture_sha256(info: dict[str, Any]) -> str:
    fields = {k: info.get(k) for k in _ARCHITECTURE_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _normalization(model: nn.Module) -> dict[str, list[float]] | None:
    for module in model.modules():
        if isinstance(module, Normalize):
            return {"mean": [round(v, 6) for v in module.mean.flatten().tolist()],
                    "std": [round(v, 6) for v in module.std.flatten().tolist()]}
    return None


def _class_names(classes: Any, num_classes: int | None) -> list[str]:
    """``classes`` as the list of names a checkpoint records: one distinct name per class of the model."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (list, tuple)):
        raise InputError(f"metadata classes must be a list of class names, got {classes!r}")
    names = [str(c) for c in classes]
    if num_classes is not None and len(names) != num_classes:
        raise InputError(f"metadata classes has {len(names)} names but the model has {num_classes} classes")
    if len(set(names)) != len(names):
        raise InputError(f"metadata classes names a class twice ({names}); give each class one name")
    return names


def checkpoint_classes(info: dict[str, Any]) -> tuple[str, ...] | int | None:
    """What a checkpoint's sidecar ``info`` (:func:`checkpoint_info`) says of its classes, for
    :func:`advwsl.classes.match_classes`: their names in logit order when recorded, else their number (the
    architecture's ``num_classes``), else None."""
    names = info.get("classes")
    if isinstance(names, list) and names:
        return tuple(str(c) for c in names)
    count = (info.get("kwargs") or {}).get("num_classes")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


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
    if metadata.get("classes") is not None:
        metadata["classes"] = _class_names(metadata["classes"], getattr(model, "num_classes", None))
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
        **to_jsonable(metadata, strict=True, where="metadata"),
    }
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    # weights first, then the sidecar, each written under a name unique to this process and renamed
    # into place: a reader (or a second process) sees a complete pair or no sidecar at all
    with atomic_path(weights, overwrite=True) as tmp:
        save_file(state, str(tmp), metadata={"format": CHECKPOINT_FORMAT})
        info.update(weights=weights.name, sha256=_sha256(tmp), architecture_sha256=_architecture_sha256(info),
                    advwsl_version=__version__, torch_version=torch.__version__,
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    with atomic_path(sidecar, overwrite=True) as tmp:
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
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
    if info.get("architecture") not in list_models():
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
                              "was modified; restore it or save the model again (a cached built-in model is "
                              "rebuilt when you delete it or pass --retrain)")
    if verify and info.get("architecture_sha256") and _architecture_sha256(info) != info["architecture_sha256"]:
        raise CheckpointError(f"the architecture fields of {sidecar} ({', '.join(_ARCHITECTURE_FIELDS)}) were "
                              "edited after the model was saved: they no longer match the weights. Restore the "
                              "sidecar, or load the weights into the architecture you want with "
                              "create_model(...).load_state_dict(safetensors.torch.load_file(...))")
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
