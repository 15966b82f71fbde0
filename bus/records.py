"""Typed records as plain data, and back: the one way the runtime checks what it reads.

The contracts that are not frames (a stage's persisted state, its heartbeat progress,
the control socket's requests and replies) are dataclasses. `plain` turns one into
what JSON and msgpack carry; `typed` builds it again from such data and checks every
field against its annotation on the way, so a reader gets the record it expects or a
`RecordError` naming the field that is wrong, never a half-checked dict.

Annotations understood: str, int, float (an int will do), bool (never an int, nor an
int a bool), `X | None`, `list[X]`, `tuple[X, ...]`, `tuple[X, Y]`, `dict[str, X]`, `typing.Any` (a
value taken as it is) and nested dataclasses. A field missing from the data takes its
default; one without a default is required; a key the record does not have is refused.
A record may check what its types cannot say in `__post_init__`, raising RecordError.
"""

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class RecordError(ValueError):
    """Data that does not make the record; the message names the field and why."""


def plain(record) -> dict:
    """A record as plain data: maps, lists, strings, numbers, booleans and None."""
    return _plain(record)


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    names, flat = _fields_of(type(value))
    if flat:
        return {name: getattr(value, name) for name in names}
    return {name: _plain(getattr(value, name)) for name in names}


_SCALARS = (str, int, float, bool)


@functools.cache
def _fields_of(kind: type) -> tuple[tuple[str, ...], bool]:
    """A record type's fields, and whether all of them are plain already, found once:
    keys' state is made plain for every piece it types."""
    hints = typing.get_type_hints(kind)
    names = tuple(spec.name for spec in dataclasses.fields(kind))
    return names, all(hints[name] in _SCALARS for name in names)


def typed(kind: type[T], data, where: str = "") -> T:
    """The record of type `kind` that `data` holds, checked field by field."""
    return _typed(kind, data, where or kind.__name__)


def _typed(kind, data, where: str):
    if kind is Any:
        return data
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if data is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _typed(inner, data, where)
    if dataclasses.is_dataclass(kind):
        return _record(kind, data, where)
    if origin is list or origin is tuple:
        _expect(isinstance(data, list | tuple), where, "a list", data)
        fixed = origin is tuple and args[-1:] != (...,)  # tuple[str, int]: so many, of these types
        if fixed:
            _expect(len(data) == len(args), where, f"a list of {len(args)}", data)
        kinds = args if fixed else [args[0]] * len(data)
        made = [_typed(kind, item, f"{where}[{index}]") for index, (kind, item) in enumerate(zip(kinds, data))]
        return made if origin is list else tuple(made)
    if origin is dict:
        _expect(isinstance(data, dict), where, "a map", data)
        key_kind, value_kind = args
        for key in data:
            _expect(isinstance(key, key_kind), f"{where} key {key!r}", key_kind.__name__, key)
        return {key: _typed(value_kind, item, f"{where}[{key!r}]") for key, item in data.items()}
    if kind is bool:
        _expect(isinstance(data, bool), where, "true or false", data)
    elif kind is float:
        _expect(isinstance(data, int | float) and not isinstance(data, bool), where, "a number", data)
        return float(data)
    elif kind in (int, str):
        _expect(isinstance(data, kind) and not isinstance(data, bool), where, kind.__name__, data)
    else:
        raise TypeError(f"{where}: records cannot hold {kind!r}")
    return data


def _record(kind, data, where: str):
    _expect(isinstance(data, dict), where, "a map", data)
    specs = {spec.name: spec for spec in dataclasses.fields(kind) if spec.init}
    unknown = sorted(str(key) for key in data if key not in specs)
    if unknown:
        raise RecordError(f"{where}: no field {', '.join(unknown)}")
    hints = typing.get_type_hints(kind)
    values = {}
    for name, spec in specs.items():
        if name in data:
            values[name] = _typed(hints[name], data[name], f"{where}.{name}")
            if "min" in spec.metadata and values[name] < spec.metadata["min"]:  # a frame body's count()
                raise RecordError(f"{where}.{name} must not be below {spec.metadata['min']}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise RecordError(f"{where}: {name} is missing")
    try:
        return kind(**values)
    except (TypeError, ValueError) as error:  # a check of the record's own (`__post_init__`)
        raise RecordError(f"{where}: {error}") from None


def _expect(ok: bool, where: str, what: str, value) -> None:
    if not ok:
        raise RecordError(f"{where} must be {what}, not {type(value).__name__}")


def require(condition: bool, what: str) -> None:
    """For a record's `__post_init__`: refuse it, saying what is wrong."""
    if not condition:
        raise RecordError(what)
