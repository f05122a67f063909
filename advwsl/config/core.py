"""Typed configuration: one frozen dataclass per job, each field one option, written once.

A field declared with :func:`option` carries its type (the annotation), its default, its help and its range
or choices. From that one declaration advwsl derives the command-line option (``--n-samples``, see
:func:`advwsl.commands.options.config_options`), the check of every value (:func:`check_value`, the one
checker behind the command line, ``--attack-kwargs``, ``reproduce --set`` and JSON/TOML config files) and
the key of ``config.json`` (:meth:`Config.to_dict`). A misspelt or ill-typed key is refused with the list of
accepted keys.

This module imports neither torch nor click, so the command line's ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, Literal, TypeVar

from ..errors import ConfigError

__all__ = ["Config", "Opt", "option", "check_value", "describe_type", "field_opt", "config_fields", "parse_cli_text",
           "set_path", "json_object", "Shard", "float_grid", "check_range"]

C = TypeVar("C", bound="Config")


@dataclass(frozen=True)
class Opt:
    """What a config field says about itself besides its type and default.

    ``flag`` is its command-line spelling (default ``--`` + the field name with dashes; ``""``: not an
    option); ``low``/``high`` bound numbers (``*_open``: strictly); ``multiple``: the option is repeated
    (one item each); ``metavar`` names the value in ``--help``; ``parse`` turns the command-line text into
    the value (default: from the type: comma lists for tuples, JSON for mappings); ``renamed_from`` (options
    that took a value) and ``renamed_flags`` (flags) list former spellings, refused with a message naming
    this one; ``short_flag``: a bool given as a single flag
    (``--targeted``) instead of ``--x/--no-x``."""

    help: str
    flag: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    multiple: bool = False
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None
    renamed_from: tuple[str, ...] = ()
    renamed_flags: tuple[str, ...] = ()
    short_flag: bool = False
    show_default: bool = True


def option(default: Any = MISSING, help: str = "", *, default_factory: Any = MISSING, **opt: Any) -> Any:
    """A config field: ``n_samples: int | None = option(None, "Use the first N samples.", low=1)``."""
    meta = {"advwsl": Opt(help, **opt)}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_opt(f: dataclasses.Field) -> Opt:
    """The :class:`Opt` of a field (an undocumented one for plain fields)."""
    return f.metadata.get("advwsl") or Opt("")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def config_fields(cls: type) -> list[tuple[dataclasses.Field, Any, Opt]]:
    """``(field, type, Opt)`` of every field of the config class ``cls``, in declaration order."""
    hints = _hints(cls)
    return [(f, hints[f.name], field_opt(f)) for f in dataclasses.fields(cls)]


# ------------------------------------------------------------------------------------------- checking values
_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null",
          dict: "a JSON object"}


def describe_type(hint: Any) -> str:
    """``hint`` in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (tuple, list):
        if origin is tuple and args and Ellipsis not in args:
            return f"a list of {len(args)} values ({', '.join(describe_type(a) for a in args)})"
        item = args[0] if args else Any
        return "a list" + ("" if item is Any else f" of {describe_type(item).removeprefix('a ').removeprefix('an ')}s")
    if origin is dict or hint is dict:
        return "a JSON object"
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"a group of settings ({', '.join(f.name for f in dataclasses.fields(hint))})"
    if isinstance(hint, type) and hasattr(hint, "parse"):
        return getattr(hint, "__doc__", "").split("\n")[0] or hint.__name__
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


class _Mismatch(Exception):
    pass


def _check(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to ``hint`` (list -> tuple, int -> float, mapping -> config), or :class:`_Mismatch`."""
    if hint is Any or isinstance(hint, TypeVar):
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(value, a, where)
            except _Mismatch:
                continue
            except ConfigError:
                if len([x for x in args if x is not type(None)]) == 1:
                    raise
        raise _Mismatch
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise _Mismatch
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if origin is tuple and args and Ellipsis not in args:
            if len(value) != len(args):
                raise _Mismatch
            return tuple(_check(v, a, f"{where}.{i}") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_check(v, item, f"{where}.{i}") for i, v in enumerate(value)]
        return tuple(out) if (origin or hint) is tuple else out
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise _Mismatch
        item = args[1] if len(args) == 2 else Any
        return {k: _check(v, item, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, Config):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch
        return hint.from_mapping(value, where=where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Mismatch
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch
        return value
    if isinstance(hint, type) and hasattr(hint, "parse") and isinstance(value, str):
        return hint.parse(value)
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise _Mismatch
        return value
    return value


def check_value(value: Any, hint: Any, *, name: str) -> Any:
    """``value`` checked against the type ``hint`` and returned in its canonical form (JSON lists become
    tuples where the type is a tuple, ints become floats where it is a float, mappings become configs);
    a :class:`ConfigError` naming ``name``, the expected type and the value otherwise. A bool is not a number;
    NaN and infinities are refused wherever a number is expected."""
    try:
        out = _check(value, hint, name)
    except _Mismatch:
        raise ConfigError(f"{name} must be {describe_type(hint)}, got {value!r}") from None
    _finite(out, name)
    return out


def _finite(value: Any, name: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if isinstance(value, (list, tuple)):
        for v in value:
            _finite(v, name)


def check_range(value: Any, opt: Opt, name: str) -> None:
    if value is None or (opt.low is None and opt.high is None):
        return
    for v in (value if isinstance(value, (list, tuple)) else (value,)):
        if not isinstance(v, (int, float)):
            continue
        low_bad = opt.low is not None and (v <= opt.low if opt.low_open else v < opt.low)
        high_bad = opt.high is not None and (v >= opt.high if opt.high_open else v > opt.high)
        if low_bad or high_bad:
            raise ConfigError(f"{name} must be {_range_text(opt)}, got {v!r}")


def _range_text(opt: Opt) -> str:
    parts = []
    if opt.low is not None:
        parts.append(f"{'>' if opt.low_open else '>='} {opt.low:g}")
    if opt.high is not None:
        parts.append(f"{'<' if opt.high_open else '<='} {opt.high:g}")
    return " and ".join(parts)


# ------------------------------------------------------------------------------------------------ configs
class Config:
    """Base of advwsl's frozen config dataclasses (``@dataclass(frozen=True) class X(Config)``).

    On construction every field is checked against its type and range (and converted to its canonical
    form), then :meth:`check` runs the checks that involve several fields. Nothing is resolved, loaded or
    written: a job turns a config into a plan."""

    def __post_init__(self) -> None:
        for f, hint, opt in config_fields(type(self)):
            label = self.flag_of(f.name)
            value = check_value(getattr(self, f.name), hint, name=label)
            check_range(value, opt, label)
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks that involve several fields (override; raise :class:`ConfigError`)."""

    @classmethod
    def flag_of(cls, name: str) -> str:
        """How errors name the field ``name``: its command-line spelling when it has one."""
        for f, _, opt in config_fields(cls):
            if f.name == name:
                return opt.flag or (f"--{name.replace('_', '-')}" if opt.help and opt.flag != "" else name)
        return name

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls: type[C], data: Mapping[str, Any], *, where: str | None = None) -> C:
        """Build from a mapping (a JSON/TOML file, ``--set`` pairs, a record); an unknown key is refused with
        the list of accepted keys, a value of the wrong type with the expected type."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or cls.__name__} must be a group of settings, got {data!r}")
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise ConfigError(f"{where or cls.__name__} has no setting {', '.join(map(repr, unknown))}; it takes: "
                              f"{', '.join(cls.keys())}")
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise ConfigError(f"{where or cls.__name__} needs {', '.join(map(repr, missing))}")
        try:
            return cls(**data)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (tuples as lists, nested configs as mappings, parsed values as text)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` (checked like any construction)."""
        unknown = sorted(set(changes) - set(self.keys()))
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no setting {', '.join(map(repr, unknown))}; it takes: "
                              f"{', '.join(self.keys())}")
        return dataclasses.replace(self, **changes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if hasattr(value, "parse") and not isinstance(value, (str, int, float, bool)):
        return str(value)
    return value


# --------------------------------------------------------------------------------- text from the command line
def json_object(text: str, name: str = "value") -> dict[str, Any]:
    """A JSON object given as text (``{}`` when empty)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object such as '{{\"steps\": 100}}', got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object, got {text!r}")
    return value


def parse_cli_text(text: Any, hint: Any, opt: Opt, name: str) -> Any:
    """The value of an option from its command-line text: ``opt.parse`` when given; comma-separated items
    for a tuple that is not repeated; a JSON object for a mapping; the text otherwise (checked later)."""
    if text is None or not isinstance(text, str):
        return text
    if opt.parse is not None:
        return opt.parse(text)
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        hint, origin = args[0], typing.get_origin(args[0])
    if origin is Literal and all(isinstance(a, int) for a in typing.get_args(hint)):
        return _item(text, int, name)
    if origin is tuple and not opt.multiple:
        item = typing.get_args(hint)[0] if typing.get_args(hint) else str
        return tuple(_item(v.strip(), item, name) for v in text.split(",") if v.strip())
    if origin is dict or hint is dict:
        return json_object(text, name)
    return text


def _item(text: str, hint: Any, name: str) -> Any:
    try:
        return int(text) if hint is int else float(text) if hint is float else text
    except ValueError:
        raise ConfigError(f"{name} must be a comma-separated list of {describe_type(hint)}s, got {text!r}") from None


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of the nested mapping ``data`` with ``value`` at ``path`` (keys and list indices joined by
    dots: ``rows.2.n_samples``). Only the containers on the path are copied; whether the key exists is left
    to the config the result builds (which lists the accepted keys)."""
    head, _, rest = path.partition(".")
    if isinstance(data, (list, tuple)):
        if not head.isdigit() or int(head) >= len(data):
            raise ConfigError(f"--set {path}: a list of {len(data)} items; give an index 0..{len(data) - 1}, not "
                              f"{head!r}")
        items = list(data)
        items[int(head)] = set_path(items[int(head)], rest, value) if rest else value
        return items
    if not isinstance(data, Mapping):
        raise ConfigError(f"--set {path}: {data!r} is a value, not a group of settings")
    out = dict(data)
    if rest:
        out[head] = set_path(data.get(head, {}), rest, value)
    else:
        out[head] = value
    return out


# ------------------------------------------------------------------------------------------ small value types
@dataclass(frozen=True)
class Shard:
    """a shard written K/N (0 <= K < N): batches b with b % N == K"""

    k: int
    n: int

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or isinstance(self.n, bool) or self.n < 1 or not 0 <= self.k < self.n:
            raise ConfigError(f"shard {self.k}/{self.n} is out of range: need 0 <= K < N (shards 0/N ... N-1/N)")

    @classmethod
    def parse(cls, text: str | tuple[int, int] | Shard | None) -> Shard:
        """``"k/N"`` (or a pair) as a shard; None is the whole run, ``0/1``."""
        if text is None:
            return cls(0, 1)
        if isinstance(text, Shard):
            return text
        try:
            k, n = (int(v) for v in (text.split("/") if isinstance(text, str) else text))
        except (ValueError, TypeError):
            raise ConfigError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def __iter__(self) -> typing.Iterator[int]:
        return iter((self.k, self.n))


#: The most points a grid given as START:STOP:NUM may have.
MAX_GRID = 100_000


def float_grid(text: str) -> tuple[float, ...]:
    """A grid of numbers as a comma list (``0,0.5,1``) or ``START:STOP:NUM`` (NUM evenly spaced points);
    finite, non-negative and increasing."""
    try:
        if ":" in text:
            lo, hi, num = text.split(":")
            lo_f, hi_f, n = float(lo), float(hi), int(num)
            if not 2 <= n <= MAX_GRID or not hi_f > lo_f:
                raise ConfigError(f"a grid START:STOP:NUM needs STOP > START and 2 <= NUM <= {MAX_GRID}, got {text!r}")
            values = tuple(lo_f + (hi_f - lo_f) * i / (n - 1) for i in range(n))
        else:
            values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"a grid must be a comma list or START:STOP:NUM, got {text!r}") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values) or any(
            b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"a grid must hold finite, non-negative, increasing numbers, got {text!r}")
    return values
