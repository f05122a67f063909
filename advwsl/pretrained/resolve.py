"""The one model resolver of every command.

:func:`resolve_model` turns what a user gives as ``--model`` / ``--checkpoint`` into a model in eval mode,
with what is known about it (:class:`ResolvedModel`): a built-in name, a checkpoint path
(``<stem>.safetensors`` + ``<stem>.json``), a zoo architecture with ``--checkpoint``, or any model of
your own as ``path/to/file.py:factory`` (a function without arguments returning an ``nn.Module`` that
takes images in [0, 1]).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import AdvwslError, AdvwslWarning, ConfigError, ModelError
from ..models import checkpoint_info, checkpoint_paths, create_model, list_models, load_model, model_info
from .cache import get_pretrained, list_pretrained

__all__ = ["ResolvedModel", "resolve_model", "describe_sources", "FACTORY_PATTERN", "load_factory_model"]

#: ``--model path/to/file.py:function``.
FACTORY_PATTERN = re.compile(r"^(?P<path>.+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")

Log = Callable[[str], None]


@dataclass
class ResolvedModel:
    """A model and what is known about it: how it was named (``name``), its ``kind`` (``"builtin"``,
    ``"checkpoint"``, ``"zoo"`` (random weights) or ``"factory"`` (``file.py:function``)), the checkpoint
    stem, the sidecar (``info``), its class names and the dataset it was trained on (name, options and
    folder; None when unknown)."""

    model: nn.Module
    name: str
    kind: str
    checkpoint: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None
    data_root: str | None = None

    @property
    def classes(self) -> list[str] | None:
        classes = self.info.get("classes")
        return list(classes) if classes else None

    @property
    def has_cams(self) -> bool:
        return callable(getattr(self.model, "cams", None))

    @property
    def num_classes(self) -> int | None:
        n = getattr(self.model, "num_classes", None)
        return int(n) if n is not None else (len(self.classes) if self.classes else None)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for configs and reports."""
        return {"name": self.name, "kind": self.kind, "checkpoint": self.checkpoint,
                "architecture": self.info.get("architecture"), "notice": self.notice,
                "trained_on": self.dataset, "metrics": self.info.get("metrics")}


def _is_checkpoint_path(text: str) -> bool:
    path = Path(text)
    weights, sidecar = checkpoint_paths(path)
    return path.suffix in (".safetensors", ".json") or weights.exists() or sidecar.exists() or "/" in text


def resolve_model(name: str, *, checkpoint: str | Path | None = None, progress: bool = True,
                  log: Log | None = None, retrain: bool = False, allow_random: bool = False) -> ResolvedModel:
    """The model named by ``--model name`` / ``--checkpoint checkpoint``, on the CPU in eval mode.

    In order: ``path/to/file.py:function`` (:func:`load_factory_model`; no ``checkpoint``); an explicit
    ``checkpoint`` (``name`` then must be its zoo architecture, or a built-in or None-like name that is
    ignored); a built-in model (:func:`~advwsl.pretrained.list_pretrained`; trained on first use and cached, ``retrain`` rebuilds
    it); a checkpoint path; a zoo architecture, which has random weights and is refused unless
    ``allow_random`` (then with a warning).
    """
    say = log or (lambda message: None)
    if name and FACTORY_PATTERN.match(name):
        if checkpoint is not None:
            raise ConfigError(f"--model {name!r} is built by your function, which loads its own weights; drop "
                              "--checkpoint")
        model = load_factory_model(name)
        classes = getattr(model, "classes", None)
        info = {"architecture": name}
        if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
            info["classes"] = list(classes)
        return ResolvedModel(model.eval(), name, "factory", info=info)
    if checkpoint is not None:
        if name in list_models():
            model = load_model(checkpoint, architecture=name)
        elif name in list_pretrained() or not name:
            model = load_model(checkpoint)
        else:
            raise ConfigError(f"--model {name!r} with --checkpoint: give the checkpoint's zoo architecture "
                              f"({', '.join(list_models())}) or only --checkpoint")
        return _from_checkpoint(model, str(checkpoint), name or str(checkpoint))
    if name in list_pretrained():
        spec = get_pretrained(name)
        model, info = spec.load(progress=progress, log=say, retrain=retrain)
        if spec.notice:
            say(spec.notice)
        return ResolvedModel(model.eval(), name, "builtin", info.get("checkpoint"), info, spec.dataset,
                             spec.dataset_kwargs(), spec.notice or None)
    if name in list_models():
        if not allow_random:
            raise ConfigError(f"--model {name!r} is an architecture with random weights; give its trained weights "
                              f"with --checkpoint PATH, or a built-in model ({', '.join(list_pretrained())})")
        warnings.warn(f"model {name!r} is built with random weights; pass --checkpoint to use a trained one",
                      AdvwslWarning, stacklevel=2)
        model = create_model(name)
        return ResolvedModel(model.eval(), name, "zoo", info={"architecture": name, "task": model_info(name).task})
    if _is_checkpoint_path(name):
        return _from_checkpoint(load_model(name), name, name)
    raise ConfigError(f"unknown model {name!r}: not a built-in model ({', '.join(list_pretrained())}), a checkpoint "
                      f"path (<stem>.safetensors + <stem>.json) nor a zoo architecture with --checkpoint "
                      f"({', '.join(list_models())}); `advwsl models` lists them")


def load_factory_model(spec: str) -> nn.Module:
    """The model ``function()`` returns, for ``spec`` = ``path/to/file.py:function``: the file is imported
    as a module (its folder first on ``sys.path`` meanwhile, so it can import its neighbours). A missing
    file or function is a :class:`ConfigError`; an import or a call that fails, or a result that is not an
    ``nn.Module``, a :class:`ModelError` that says what happened."""
    match = FACTORY_PATTERN.match(spec)
    if match is None:
        raise ConfigError(f"--model {spec!r}: a model of your own is given as path/to/file.py:function")
    path, function = Path(match["path"]).expanduser(), match["function"]
    if not path.is_file():
        raise ConfigError(f"--model {spec!r}: {path} does not exist; give the Python file that defines {function}()")
    module_name = "advwsl_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error of the user's file
        raise ModelError(f"--model {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    factory = getattr(module, function, None)
    if not callable(factory):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        raise ConfigError(f"--model {spec!r}: {path} defines no function {function!r}; it defines "
                          f"{', '.join(defined) or 'no function'}")
    try:
        model = factory()
    except AdvwslError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's function failed
        raise ModelError(f"--model {spec!r}: {function}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"--model {spec!r}: {function}() returned {type(model).__name__}, not a torch.nn.Module; "
                         "return the model (taking images in [0, 1], returning logits)")
    return model


def _from_checkpoint(model: nn.Module, path: str, name: str) -> ResolvedModel:
    info = checkpoint_info(path)
    dataset = info.get("dataset")
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    data_name = dataset.get("name") if isinstance(dataset, dict) else None
    data_name = data_name or training.get("dataset")
    same = bool(data_name) and data_name == training.get("dataset")
    kwargs = dict(training.get("dataset_kwargs") or {}) if same else {}
    root = training.get("data_root") if same else None
    return ResolvedModel(model.eval(), name, "checkpoint", path, info, data_name, kwargs, data_root=root)


def describe_sources() -> str:
    """What ``--model`` accepts, one line each (for ``advwsl models``)."""
    lines = ["Built-in trained models (trained on first use, cached):"]
    lines += [f"  {n:<16} {get_pretrained(n).description}" for n in list_pretrained()]
    lines += ["", "Architectures (zoo; give trained weights with --checkpoint, or train them with advwsl train):"]
    lines += [f"  {n:<16} {model_info(n).task:<14} {model_info(n).description}" for n in list_models()]
    lines += ["", "Checkpoints: a path <stem>.safetensors (+ <stem>.json sidecar) written by advwsl train or save_model."]
    lines += ["Your own model: path/to/file.py:function, a function returning a torch.nn.Module on images in [0, 1] "
              "(pass --dataset)."]
    return "\n".join(lines)
