"""/status as JSON text, re-rendering only the parts whose sources changed since the last render.

With 1,000 Services the document is ~1 MB; building and rendering it took
60-140 ms per request, which a client polling /status during reloads paid
every time (and the supervisor's other threads with it, through the GIL).
Most of it (config, pools, services, announcements, members, plugins) changes
only when a config, an allocation, a membership view or an announcer's status
arrives, each of which is a new object (nothing the supervisor routes is
changed in place). So each top-level field is rendered once per identity of
its sources and kept as text (`StatusRenderer.keep`); the Services, one row
each (`Rows`), are built and encoded again only where their own sources
changed, as a reload changes one of 1,000; the live fields
(workers, announcers, uptimes) are rendered per request (`assemble`). The
supervisor keeps the text up to date in a thread of its own as soon as its
loop publishes a change (`probing.render_ahead`), so a request only
assembles: it never waits for a re-render.

The layout: the document and its containers down to MAX_PRETTY levels are
indented as `json.dumps(indent=2)` would; every value below that (one
Service, one announcement, one member) is one line, written by the C
encoder. `json.dumps(indent=2)` uses the pure-Python encoder, 3-4 times
slower on 1,000 Services (measured: 78 against 21 ms of CPU for services,
announcements and plugins), and a changed field is re-rendered while the
supervisor's thread routes the same reload under the GIL. The text parses
to exactly the document (a test compares the two).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# (field name, the objects its value is computed from or None for "every time", the computation)
Field = tuple[str, tuple[object, ...] | None, Callable[[], Any]]

# Containers nested deeper than this (the document is level 0) are written on one line:
# level 1 is a field's value (the list of Services), level 3 a plugin payload's lists.
MAX_PRETTY = 3

Encode = Callable[[Any], str]

# One item of a `Rows` field: what names it, what it is built from, and how to build it.
Row = tuple[object, tuple[object, ...], Callable[[], Any]]


class Rows:
    """A list field whose items are built and rendered again only when their own sources change.

    With 1,000 Services the "services" field was a quarter of a render's CPU to
    build and as much to encode, after every allocation and every announcer
    report, though a reload changes one Service of them. `StatusRenderer.keep`
    keeps where each row's text stands in the field's text (no second copy of
    it) and reuses it while the row's sources are equal (`is`, else `==`, so
    1, 1.0 and True in a plugin's election count as one value); everything
    else reads the rows as the plain list they make (`values`).
    """

    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows

    def values(self) -> list[Any]:
        return [build() for _, _, build in self.rows]


def plain(value: Any) -> Any:
    """A field's value as the document holds it (`Rows` made into their list)."""
    return value.values() if isinstance(value, Rows) else value


def _encoder() -> Encode:
    """One line of JSON, `json.dumps`'s separators for indented output, str() for what JSON lacks.

    The C encoder made once per render and called per item: `JSONEncoder.encode`
    makes one per call, half the time of 1,000 short items. One per render, as
    its circular-reference markers are state.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython without _json
        return json.JSONEncoder(separators=(", ", ": "), default=str).encode
    encode = make({}, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encode(value, 0))


class StatusRenderer:
    """Keeps the rendered text of each field with the sources it was rendered from (held, so ids stay unique)."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[tuple[object, ...], str]] = {}
        # A field whose computation raised, with its sources: the same error again, not the same work,
        # until a source changes (the render-ahead thread looks at every publish of the loop).
        self._failed: dict[str, tuple[tuple[object, ...], Exception]] = {}
        # A `Rows` field's rows: name -> row key -> (its sources, where its text starts and ends in the kept text).
        self._rows: dict[str, dict[object, tuple[tuple[object, ...], int, int]]] = {}

    def render(self, fields: Sequence[Field]) -> bytes:
        """The whole document now: kept fields re-rendered where their sources changed, live fields rendered."""
        return assemble(fields, self.keep(fields))

    def keep(self, fields: Sequence[Field]) -> dict[str, str]:
        """The text of every field that has sources, re-rendering those whose sources changed since last time."""
        texts = {}
        encode: Encode | None = None
        for name, sources, compute in fields:
            if sources is None:
                continue
            kept = self._kept.get(name)
            if kept is not None and _same(kept[0], sources):
                texts[name] = kept[1]
                continue
            failed = self._failed.get(name)
            if failed is not None and _same(failed[0], sources):
                raise failed[1].with_traceback(None)
            encode = encode or _encoder()
            try:
                value = compute()
                if isinstance(value, Rows):
                    text = self._rows_text(name, value, kept[1] if kept is not None else "", encode)
                else:
                    self._rows.pop(name, None)
                    text = field_text(name, value, encode)
            except Exception as exc:
                self._failed[name] = (sources, exc)
                self._rows.pop(name, None)
                raise
            self._failed.pop(name, None)
            self._kept[name] = (sources, text)
            texts[name] = text
        return texts

    def _rows_text(self, name: str, value: Rows, before: str, encode: Encode) -> str:
        """The field's text, each row's own text taken from `before` (the last one) while its sources are the same."""
        if not value.rows:
            self._rows.pop(name, None)
            return field_text(name, [], encode)
        index = self._rows.get(name, {})
        head, separator = f"  {json.dumps(name)}: [\n    ", ",\n    "
        parts = [head]
        at = len(head)
        now: dict[object, tuple[tuple[object, ...], int, int]] = {}
        for i, (key, sources, build) in enumerate(value.rows):
            if i:
                parts.append(separator)
                at += len(separator)
            found = index.get(key)
            # Tuples compare item by item in C, identity first.
            text = before[found[1]:found[2]] if found is not None and found[0] == sources else encode(build())
            parts.append(text)
            now[key] = (sources, at, at + len(text))
            at += len(text)
        parts.append("\n  ]")
        self._rows[name] = now
        return "".join(parts)


def assemble(fields: Sequence[Field], texts: Mapping[str, str]) -> bytes:
    """The document: the kept `texts` of the fields that have sources, the live fields (no sources) rendered now.

    `texts` may come from an earlier render (`StatusRenderer.keep`) than
    `fields`: the fields with sources are the same names in every render.
    """
    encode = _encoder()
    parts = [texts[name] if sources is not None and name in texts else field_text(name, compute(), encode)
             for name, sources, compute in fields]
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode() if parts else b"{}\n"


def field_text(name: str, value: Any, encode: Encode) -> str:
    """One top-level field as it stands in the document."""
    return f"  {json.dumps(name)}: {render_value(plain(value), 1, encode)}"


def render_value(value: Any, level: int, encode: Encode | None = None) -> str:
    """`value` as JSON text, indented like `json.dumps(indent=2)` down to MAX_PRETTY, one line below it."""
    encode = encode or _encoder()
    if level > MAX_PRETTY or not value or not isinstance(value, (dict, list, tuple)):
        return encode(value)
    pad = "\n" + "  " * (level + 1)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return encode(value)  # json's own conversion of other keys (int, bool, None)
        inner = ("," + pad).join(f"{encode(key)}: {render_value(item, level + 1, encode)}"
                                 for key, item in value.items())
        return "{" + pad + inner + "\n" + "  " * level + "}"
    return "[" + pad + ("," + pad).join(map(encode, value)) + "\n" + "  " * level + "]"


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(x is y or (type(x) in _VALUES and x == y) for x, y in zip(a, b, strict=True))


# Compared by value: cheap, and equal values from different objects are the same source.
_VALUES = frozenset({str, int, float, bool, tuple})
