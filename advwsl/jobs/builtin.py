"""Built-in trained models and the one model resolver of every command.

A built-in model is trained by advwsl itself on data that is on every machine (scikit-learn's digits, the
synthetic histology set), on first use, and cached under :func:`advwsl.utils.cache_dir` ``("models")``;
each registers a :class:`BuiltinModel` in its own module (:mod:`.builtin_digits`, :mod:`.builtin_wsl`).
The cache is safe under concurrent first use: a file lock makes a second process wait for the first one's
model and load it instead of training it again.

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
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from torch import nn

from ..errors import AdvwslError, AdvwslWarning, CheckpointError, ConfigError, ModelError
from ..models import checkpoint_info, checkpoint_paths, create_model, list_models, load_model, model_info
from ..registry import Registry
from ..utils import torch_threads

__all__ = ["BuiltinModel", "ResolvedModel", "register_builtin", "get_builtin", "list_builtins", "resolve_model",
           "cached_model", "training_dir", "describe_sources", "FACTORY_PATTERN", "load_factory_model"]

#: ``--model path/to/file.py:function``.
FACTORY_PATTERN = re.compile(r"^(?P<path>.+\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")

Log = Callable[[str], None]


@dataclass(frozen=True)
class BuiltinModel:
    """A model advwsl trains itself on first use.

    ``load(progress=..., log=..., retrain=...)`` returns ``(model, info)``: the model on the CPU in eval mode
    and its checkpoint sidecar plus ``checkpoint`` (the cached stem). ``dataset`` and ``dataset_kwargs()``
    name the data it was trained on (the default evaluation data of the commands); ``notice`` is shown when
    it is used."""

    name: str
    description: str
    load: Callable[..., tuple[nn.Module, dict[str, Any]]]
    dataset: str
    dataset_kwargs: Callable[[], dict[str, Any]] = dict
    notice: str = ""


_BUILTINS: Registry[BuiltinModel] = Registry("built-in model")


def register_builtin(spec: BuiltinModel) -> BuiltinModel:
    """Make ``spec`` available as ``--model NAME`` in every command."""
    return _BUILTINS.register(spec.name, spec)


def get_builtin(name: str) -> BuiltinModel:
    return _BUILTINS.get(name)


def list_builtins() -> list[str]:
    return _BUILTINS.names()


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


#: Intra-op threads a built-in model is trained with: on a CPU the thread count changes the order of the
#: sums of every backward pass, so the same recipe gives another model at another count. One thread makes
#: the first-use training (and so every number printed with the model) the same on every machine.
BUILD_THREADS = 1


def training_dir(stem: Path, retrain: bool = False) -> tuple[Path, bool]:
    """The folder ``<stem>.training`` where the checkpoint at ``stem`` is trained, created (emptied first when
    ``retrain``), and whether it holds an interrupted training to resume."""
    run_dir = stem.with_name(stem.name + ".training")
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    resume = (run_dir / "state" / "last.pt").is_file() or (run_dir / "summary.json").is_file()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resume


def cached_model(stem: Path, build: Callable[[], None], *, retrain: bool = False,
                 log: Log | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The checkpoint at ``stem``, built by ``build()`` (which must save it there) when it is missing or
    ``retrain``; ``(model, sidecar + {"checkpoint": stem})``. ``build`` runs with :data:`BUILD_THREADS`
    torch threads, whatever ``OMP_NUM_THREADS`` says, so that it gives the same model everywhere. A file lock
    beside ``stem`` serializes concurrent first uses: the second process waits, then loads what the first
    one saved."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(stem) + ".lock")
    with lock:
        cached = all(p.is_file() for p in checkpoint_paths(stem))
        if retrain or not cached:
            with torch_threads(BUILD_THREADS):
                build()
        try:
            model = load_model(stem)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}. This is a cached built-in model: delete {stem}.* or rerun with "
                                  "--retrain to rebuild it") from None
        return model, {**checkpoint_info(stem), "checkpoint": str(stem)}


def _is_checkpoint_path(text: str) -> bool:
    path = Path(text)
    weights, sidecar = checkpoint_paths(path)
    return path.suffix in (".safetensors", ".json") or weights.exists() or sidecar.exists() or "/" in text


def resolve_model(name: str, *, checkpoint: str | Path | None = None, progress: bool = True,
                  log: Log | None = None, retrain: bool = False, allow_random: bool = False) -> ResolvedModel:
    """The model named by ``--model name`` / ``--checkpoint checkpoint``, on the CPU in eval mode.

    In order: ``path/to/file.py:function`` (:func:`load_factory_model`; no ``checkpoint``); an explicit
    ``checkpoint`` (``name`` then must be its zoo architecture, or a built-in or None-like name that is
    ignored); a built-in model (:func:`list_builtins`; trained on first use and cached, ``retrain`` rebuilds
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
        elif name in list_builtins() or not name:
            model = load_model(checkpoint)
        else:
            raise ConfigError(f"--model {name!r} with --checkpoint: give the checkpoint's zoo architecture "
                              f"({', '.join(list_models())}) or only --checkpoint")
        return _from_checkpoint(model, str(checkpoint), name or str(checkpoint))
    if name in list_builtins():
        spec = get_builtin(name)
        model, info = spec.load(progress=progress, log=say, retrain=retrain)
        if spec.notice:
            say(spec.notice)
        return ResolvedModel(model.eval(), name, "builtin", info.get("checkpoint"), info, spec.dataset,
                             spec.dataset_kwargs(), spec.notice or None)
    if name in list_models():
        if not allow_random:
            raise ConfigError(f"--model {name!r} is an architecture with random weights; give its trained weights "
                              f"with --checkpoint PATH, or a built-in model ({', '.join(list_builtins())})")
        warnings.warn(f"model {name!r} is built with random weights; pass --checkpoint to use a trained one",
                      AdvwslWarning, stacklevel=2)
        model = create_model(name)
        return ResolvedModel(model.eval(), name, "zoo", info={"architecture": name, "task": model_info(name).task})
    if _is_checkpoint_path(name):
        return _from_checkpoint(load_model(name), name, name)
    raise ConfigError(f"unknown model {name!r}: not a built-in model ({', '.join(list_builtins())}), a checkpoint "
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
    lines += [f"  {n:<16} {get_builtin(n).description}" for n in list_builtins()]
    lines += ["", "Architectures (zoo; give trained weights with --checkpoint, or train them with advwsl train):"]
    lines += [f"  {n:<16} {model_info(n).task:<14} {model_info(n).description}" for n in list_models()]
    lines += ["", "Checkpoints: a path <stem>.safetensors (+ <stem>.json sidecar) written by advwsl train or save_model."]
    lines += ["Your own model: path/to/file.py:function, a function returning a torch.nn.Module on images in [0, 1] "
              "(pass --dataset)."]
    return "\n".join(lines)
