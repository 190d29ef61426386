"""What the YAML loader produces, for the parser: documents whose mappings and lists remember their lines.

Kept apart from `loading` (which reads files with PyYAML) so that `parsing`
depends on these shapes only, and `loading` may call `parsing` without an
import cycle between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class LocatedDict(dict[Any, Any]):
    """A dict that knows its 1-based start line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        lines = getattr(self, "key_lines", None) or {}
        return int(lines.get(key, self.line))


class LocatedList(list[Any]):
    """A list that knows its 1-based start line and the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", None) or []
        return lines[index] if 0 <= index < len(lines) else self.line


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One YAML document of a file: `body` is usually a LocatedDict, but may be anything."""

    file: str
    line: int
    index: int
    body: Any
