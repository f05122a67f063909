"""The one registry pattern of advwsl (after timm's): entries are registered where they are defined, and
looked up by name. Attacks (:mod:`advwsl.attacks`), datasets (:mod:`advwsl.data`), models, heads and
backbones (:mod:`advwsl.models`) and the built-in trained models (:mod:`advwsl.pretrained`) each keep
one :class:`Registry`; the command line, the tests and the docs read them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import InputError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names it in error messages, e.g. ``"attack"``).

    Names are ASCII; registering a taken name is an error unless ``overwrite``; an unknown name is an
    :class:`InputError` that lists the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        if not isinstance(name, str) or not name or not name.isascii():
            raise InputError(f"{self.kind} names must be non-empty ASCII strings, got {name!r}")
        if name in self._entries and self._entries[name] is not entry and not overwrite:
            raise InputError(f"a {self.kind} named {name!r} is already registered; choose another name or pass "
                             "overwrite=True")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise InputError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
