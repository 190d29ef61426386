"""Diagnostics: what validation says about a config, as values.

One format everywhere (`metalloid check`, a rejected reload in the log and in
`/status`, Warning events in Kubernetes): `FILE:LINE: Kind/name: message`, where
the message names the offending value and says how to fix it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from supervisor.config.model import Source


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    severity: Severity
    source: Source
    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        return f"{self.source.file}:{self.source.line}: {self.kind}/{self.name}: {prefix}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def error(source: Source, kind: str, name: str, message: str) -> Diagnostic:
    return Diagnostic(severity=Severity.ERROR, source=source, kind=kind, name=name, message=message)


def warning(source: Source, kind: str, name: str, message: str) -> Diagnostic:
    return Diagnostic(severity=Severity.WARNING, source=source, kind=kind, name=name, message=message)


def has_errors(diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
