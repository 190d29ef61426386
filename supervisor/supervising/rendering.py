"""/status as JSON text, re-rendering only the parts whose sources changed since the last request.

With 1,000 Services the document is ~0.5 MB; building and rendering it took
60-140 ms per request, which a client polling /status during reloads paid
every time (and the supervisor's other threads with it, through the GIL).
Most of it (config, pools, services, announcements, members, plugins) changes
only when a config, an allocation, a membership view or an announcer's status
arrives, each of which is a new object (nothing the supervisor routes is
changed in place). So each top-level field is rendered once per identity of
its sources and kept as text; the live fields (workers, announcers, uptimes)
are rendered per request. The text is exactly `json.dumps(document, indent=2)`
plus a newline: a test compares the two.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

# (field name, the objects its value is computed from or None for "every time", the computation)
Field = tuple[str, tuple[object, ...] | None, Callable[[], Any]]


class StatusRenderer:
    """Keeps the rendered text of each field with the sources it was rendered from (held, so ids stay unique)."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[tuple[object, ...], str]] = {}

    def render(self, fields: Sequence[Field]) -> bytes:
        parts = []
        for name, sources, compute in fields:
            kept = self._kept.get(name)
            if sources is not None and kept is not None and _same(kept[0], sources):
                text = kept[1]
            else:
                text = _field(name, compute())
                if sources is not None:
                    self._kept[name] = (sources, text)
            parts.append(text)
        return ("{\n" + ",\n".join(parts) + "\n}\n").encode() if parts else b"{}\n"


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    return len(a) == len(b) and all(x is y or (type(x) in _VALUES and x == y) for x, y in zip(a, b, strict=True))


# Compared by value: cheap, and equal values from different objects are the same source.
_VALUES = frozenset({str, int, float, bool, tuple})


def _field(name: str, value: Any) -> str:
    # json.dumps(..., indent=2) of the whole object indents a member's lines by
    # two more spaces; strings never hold a raw newline (JSON escapes it).
    rendered = json.dumps(value, indent=2, default=str).replace("\n", "\n  ")
    return f"  {json.dumps(name)}: {rendered}"
