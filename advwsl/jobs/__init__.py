"""What each command does, callable from Python: a job takes a plain config, checks it before any work,
and writes a run directory. :mod:`.builtin` holds the built-in trained models and the one model resolver;
:mod:`.data` the one data resolver."""

from . import builtin_digits, builtin_mnist, builtin_wsl  # noqa: F401  (each module registers its built-in models)
from .builtin import ResolvedModel, describe_sources, list_builtins, resolve_model
from .data import EvalData, data_for_model, load_data

__all__ = ["EvalData", "ResolvedModel", "data_for_model", "describe_sources", "list_builtins", "load_data",
           "resolve_model"]
