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
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any, TypeVar

C = TypeVar("C", bound=type)

# Field metadata: this field is not sent; the receiver gets the field's default.
NOT_PICKLED: dict[str, object] = {"pickle": False}

_set = object.__setattr__  # frozen: the dataclass's own __setattr__ refuses


def quick_pickle(cls: C) -> C:
    """Decorate a frozen, slotted dataclass (above `@dataclass`) to pickle without `fields()` per object."""
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    blanks = {i: f.default for i, f in enumerate(fields) if f.metadata.get("pickle", True) is False}
    for i, default in blanks.items():
        if default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{names[i]}: a field that is not pickled needs a default")
    getstate = _getter(names, blanks)

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
