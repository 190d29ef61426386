"""Quick pickling for the frozen, slotted dataclasses that cross the worker pipes.

`dataclass(frozen=True, slots=True)` pickles an object through
`dataclasses._dataclass_getstate` and `_dataclass_setstate`, which call
`fields(self)` for every object, both ways (the standard library says so
itself: "could be slightly more performant"). A 1,000-Service config is
~3,000 such objects (Service, ServicePort, Source), an allocation ~2,000;
the supervisor unpickles one of each and pickles three messages on every
reload, in the process that also serves /status (bench/status.py). Half of
that time was `fields()`.

`quick_pickle` gives a class the same state (its field values in field
order) read by one `operator.attrgetter` made once, and sets it back with
the field names looked up once. A field whose metadata has
`NOT_PICKLED` travels as its default (the config's line tracking: only the
process that parsed the file reads it, `config/model.py`). Equality and
`__init__` are untouched; what unpickles equals what was pickled.

`dumps_whole` is the one exception: it keeps the `NOT_PICKLED` fields, for
a parse handed to another process that validates it (`metalloid run`'s
start-up check hands its parse to the file watcher, `config/reusing.py`).
"""

from __future__ import annotations

import copyreg
import dataclasses
import io
import operator
import pickle
from collections.abc import Callable
from typing import Any, TypeVar

C = TypeVar("C", bound=type)

# Field metadata: this field is not sent; the receiver gets the field's default.
NOT_PICKLED: dict[str, object] = {"pickle": False}

_set = object.__setattr__  # frozen: the dataclass's own __setattr__ refuses

# The classes with `NOT_PICKLED` fields, and how to read every field's value (for `dumps_whole`).
_WHOLE: dict[type, Callable[[Any], tuple[Any, ...] | list[Any]]] = {}


def quick_pickle(cls: C) -> C:
    """Decorate a frozen, slotted dataclass (above `@dataclass`) to pickle without `fields()` per object."""
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    blanks = {i: f.default for i, f in enumerate(fields) if f.metadata.get("pickle", True) is False}
    for i, default in blanks.items():
        if default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{names[i]}: a field that is not pickled needs a default")
    getstate = _getter(names, blanks)
    if blanks:
        _WHOLE[cls] = _getter(names, {})

    def __setstate__(self: Any, state: tuple[Any, ...] | list[Any]) -> None:
        for name, value in zip(names, state, strict=False):
            _set(self, name, value)

    setattr(cls, "__getstate__", getstate)  # noqa: B010 - mypy refuses assigning a method
    setattr(cls, "__setstate__", __setstate__)  # noqa: B010
    return cls


def _getter(names: tuple[str, ...], blanks: dict[int, object]) -> Callable[[Any], tuple[Any, ...] | list[Any]]:
    # A function, not the attrgetter itself: only functions bind as methods.
    if len(names) != 1:
        get = operator.attrgetter(*names) if names else (lambda _: ())
    else:  # attrgetter of one name returns the value, not a tuple
        name = names[0]

        def get(self: Any) -> tuple[Any, ...]:
            return (getattr(self, name),)

    if not blanks:
        def __getstate__(self: Any) -> tuple[Any, ...]:
            return get(self)

        return __getstate__

    def without_blanks(self: Any) -> list[Any]:
        values = list(get(self))
        for i, default in blanks.items():
            values[i] = default
        return values

    return without_blanks


def dumps_whole(obj: object) -> bytes:
    """`pickle.dumps(obj)`, but every `quick_pickle` object keeps its `NOT_PICKLED` fields too.

    They unpickle through the class's own `__setstate__`, which sets the
    fields in order, so the copy has its line tracking and validates (and
    says where) as the original does.
    """
    out = io.BytesIO()
    _WholePickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


class _WholePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # Called for every object but the exact builtins (str, int, tuple, ...), so cheap to leave.
        get = _WHOLE.get(type(obj))
        if get is None:
            return NotImplemented
        return copyreg.__newobj__, (type(obj),), get(obj)  # type: ignore[attr-defined]
