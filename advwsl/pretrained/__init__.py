"""Built-in trained models as data: each a :class:`Pretrained` record (architecture, dataset, recipe and
the code that trains it) registered in its module — ``digits-cnn`` (:mod:`.digits`), ``mnist-cnn``
(:mod:`.mnist`), the weakly supervised demos ``wildcat``, ``cam``, ... (:mod:`.demo`) — trained on first
use and cached by one mechanism (:mod:`.cache`), plus the models ``advwsl reproduce`` trains on request
(:mod:`.trained`), and the one model resolver of every command (:mod:`.resolve`)."""

from . import demo, digits, mnist  # noqa: F401  (each module registers its built-in models)
from .cache import (BUILD_THREADS, Pretrained, cache_stem, cached_model, code_fingerprint, get_pretrained, list_pretrained,
                    register_pretrained, training_dir)
from .resolve import FACTORY_PATTERN, ResolvedModel, describe_sources, load_factory_model, resolve_model
from .trained import trained_checkpoint, trained_model

__all__ = ["BUILD_THREADS", "Pretrained", "cache_stem", "cached_model", "code_fingerprint", "get_pretrained", "list_pretrained",
           "register_pretrained", "training_dir", "FACTORY_PATTERN", "ResolvedModel", "describe_sources",
           "load_factory_model", "resolve_model", "trained_checkpoint", "trained_model"]
