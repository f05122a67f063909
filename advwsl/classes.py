"""Classes by name: a model and a dataset go together only when their class names agree.

A checkpoint records its class names (``classes`` in its sidecar, :mod:`advwsl.models.checkpoints`) and a
dataset exposes them (:func:`advwsl.data.base.dataset_classes`). Label ``k`` of the data means class
``data_classes[k]``; logit ``j`` of the model means ``model_classes[j]``. Matching them by position, as a
bare ``argmax == label`` does, silently gives wrong numbers when the two lists are ordered differently
(a folder dataset sorts ``normal``, ``malignant`` the other way round) or have different lengths (a
5-class model on 2-class data). :func:`match_classes` refuses such a pair, or with ``remap`` returns the
permutation that matches the names.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import ConfigError

__all__ = ["ClassMismatch", "match_classes"]


class ClassMismatch(ConfigError):
    """A model and a dataset whose classes differ (names, order or number)."""


def _names(classes: Sequence[object] | int | None, what: str) -> tuple[str, ...] | int | None:
    if classes is None or (isinstance(classes, int) and not isinstance(classes, bool)):
        return classes
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ClassMismatch(f"the {what} classes must be a list of names or a number, got {classes!r}")
    names = tuple(str(c) for c in classes)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ClassMismatch(f"the {what} classes name {twice} more than once ({list(names)}); give each class "
                            "one name")
    return names


def _count(classes: tuple[str, ...] | int) -> int:
    return classes if isinstance(classes, int) else len(classes)


def match_classes(model_classes: Sequence[object] | int | None, data_classes: Sequence[object] | int | None, *,
                  remap: bool = False, option: str = "remap=True") -> list[int] | None:
    """Check that a model's classes are the data's, by name.

    Parameters
    ----------
    model_classes, data_classes : list of names, int or None
        Class names in the order of the model's logits / of the data's labels; a number when only the count
        is known (then only counts are compared); None when unknown (nothing is checked).
    remap : bool
        Accept the same names in another order and return the permutation instead of refusing.
    option : str
        How the caller asks for ``remap`` (e.g. a command-line option), named in the refusal.

    Returns
    -------
    list of int or None
        None when labels index the model's logits as they are (same names in the same order, or too little
        known to tell); with ``remap`` and the same names in another order, ``index`` such that data label
        ``k`` is the model's class ``index[k]`` (``torch.as_tensor(index)[labels]``).

    Raises
    ------
    ClassMismatch
        Different numbers of classes, different names, or (without ``remap``) the same names in another
        order: the message lists both and what to do.
    """
    model, data = _names(model_classes, "model's"), _names(data_classes, "data's")
    if model is None or data is None:
        return None
    if _count(model) != _count(data):
        raise ClassMismatch(f"the model has {_count(model)} classes{_shown(model)} but the data has {_count(data)}"
                            f"{_shown(data)}; evaluate, attack or train a model on data with the same classes")
    if isinstance(model, int) or isinstance(data, int) or model == data:
        return None
    if set(model) != set(data):
        raise ClassMismatch(f"the model's classes {list(model)} are not the data's {list(data)} (only the model "
                            f"has {sorted(set(model) - set(data))}, only the data {sorted(set(data) - set(model))}); "
                            "use a model trained on these classes, or name the data's classes as the model does "
                            "(a folder dataset takes classes=[...])")
    if not remap:
        raise ClassMismatch(f"the model's classes {list(model)} and the data's {list(data)} are the same names in "
                            "another order: label k would be read as the model's class k. Pass "
                            f"{option} to match them by name, or give the data's classes in the model's order "
                            "(a folder dataset takes classes=[...])")
    return [model.index(name) for name in data]


def _shown(classes: tuple[str, ...] | int) -> str:
    return "" if isinstance(classes, int) else f" ({', '.join(classes)})"
