"""Typed, never-raising access to the fields of one YAML/JSON object.

A `Fields` wraps one mapping of one object (say `spec` of an IPAddressPool)
with its dotted path and the object's identity. Each getter returns a value of
the asked type, or the default after recording an error that names the field
path, the value found and what was expected — so parsers stay straight-line
code and any garbage (from a file or the API) becomes a diagnostic, never an
exception.

Line numbers come from `LocatedDict`/`LocatedList` when the data came from a
file; plain dicts (the Kubernetes API) fall back to the object's own line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.model import Source


@dataclass(slots=True, kw_only=True)
class ObjectContext:
    """Who is being parsed: where diagnostics go and which field lines were seen."""

    file: str
    line: int
    kind: str
    name: str
    diagnostics: list[Diagnostic]
    field_lines: dict[str, int] = field(default_factory=dict)

    def source(self, line: int | None = None) -> Source:
        return Source(file=self.file, line=line if line else self.line)

    def error(self, line: int | None, message: str) -> None:
        self.diagnostics.append(error(self.source(line), self.kind, self.name, message))

    def warning(self, line: int | None, message: str) -> None:
        self.diagnostics.append(warning(self.source(line), self.kind, self.name, message))


def describe(value: Any) -> str:
    """A value as the user wrote it, for messages: strings quoted, YAML spelling otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def line_in(container: Any, key: Any, fallback: int) -> int:
    line_of = getattr(container, "line_of", None)
    if line_of is None:
        return fallback
    try:
        line = int(line_of(key))
    except Exception:
        return fallback
    return line or fallback


class Fields:
    """One mapping of an object, read field by field."""

    def __init__(self, ctx: ObjectContext, mapping: Mapping[Any, Any], path: str, line: int) -> None:
        self.ctx = ctx
        self.mapping = mapping
        self.path = path
        self.line = line

    def path_of(self, key: Any) -> str:
        return f"{self.path}.{key}" if self.path else key

    def line_of(self, key: Any) -> int:
        line = line_in(self.mapping, key, self.line)
        self.ctx.field_lines.setdefault(self.path_of(key), line)
        return line

    def has(self, key: str) -> bool:
        return key in self.mapping and self.mapping[key] is not None

    def raw(self, key: str) -> Any:
        return self.mapping.get(key)

    def _wrong(self, key: str, expected: str) -> None:
        self.ctx.error(self.line_of(key), f"{self.path_of(key)}: expected {expected}, got {describe(self.raw(key))}")

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, str):
            self.line_of(key)
            return value
        self._wrong(key, "a string")
        return default

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            self.line_of(key)
            return value
        self._wrong(key, "true or false")
        return default

    def get_int(self, key: str, default: int | None, *, low: int | None = None, high: int | None = None) -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self._wrong(key, "an integer")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if low is not None and high is not None else (
                f"at least {low}" if low is not None else f"at most {high}")
            self.ctx.error(self.line_of(key), f"{self.path_of(key)}: {value} is out of range; use a value {bounds}")
            return default
        self.line_of(key)
        return value

    def get_number(self, key: str, default: float | None, *, low: float | None = None) -> float | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            self._wrong(key, "a number")
            return default
        if low is not None and value < low:
            self.ctx.error(self.line_of(key), f"{self.path_of(key)}: {value} is out of range; use at least {low}")
            return default
        self.line_of(key)
        return float(value)

    def get_map(self, key: str) -> Fields | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self._wrong(key, "a mapping")
            return None
        line = self.line_of(key)
        return Fields(self.ctx, value, self.path_of(key), int(getattr(value, "line", 0) or line))

    def get_list(self, key: str) -> list[tuple[Any, str, int]] | None:
        """Items as (value, path, line), or None when absent or not a list."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self._wrong(key, "a list")
            return None
        base = self.line_of(key)
        return [(item, f"{self.path_of(key)}[{i}]", line_in(value, i, base)) for i, item in enumerate(value)]

    def get_maps(self, key: str) -> Iterator[Fields]:
        for item, path, line in self.get_list(key) or []:
            if isinstance(item, Mapping):
                yield Fields(self.ctx, item, path, int(getattr(item, "line", 0) or line))
            else:
                self.ctx.error(line, f"{path}: expected a mapping, got {describe(item)}")

    def get_strs(self, key: str) -> list[tuple[str, str, int]]:
        """String items as (value, path, line); other items are errors."""
        found: list[tuple[str, str, int]] = []
        for item, path, line in self.get_list(key) or []:
            if isinstance(item, str):
                self.ctx.field_lines.setdefault(path, line)
                found.append((item, path, line))
            else:
                self.ctx.error(line, f"{path}: expected a string, got {describe(item)}")
        return found

    def get_str_map(self, key: str) -> dict[str, str]:
        """A string-to-string mapping (labels, annotations, selector)."""
        sub = self.get_map(key)
        if sub is None:
            return {}
        found: dict[str, str] = {}
        for k, v in sub.mapping.items():
            if not isinstance(k, str):
                self.ctx.error(sub.line_of(k), f"{sub.path}: key {describe(k)} must be a string; quote it")
            elif not isinstance(v, str):
                self.ctx.error(sub.line_of(k), f"{sub.path_of(k)}: expected a string, got {describe(v)}; quote it")
            else:
                sub.line_of(k)
                found[k] = v
        return found

    def warn_unknown(self, known: frozenset[str]) -> None:
        """Warn about fields the parser ignores (typos such as `autoassign`)."""
        for key in self.mapping:
            if key in known:
                continue
            text = str(key)
            close = difflib.get_close_matches(text, sorted(known), n=1)
            hint = f"did you mean {close[0]}?" if close else f"known fields: {', '.join(sorted(known))}"
            self.ctx.warning(line_in(self.mapping, key, self.line),
                             f"unknown field {self.path_of(text)} is ignored; {hint}")
