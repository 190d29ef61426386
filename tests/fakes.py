"""Hand-written fakes shared by the tests (STYLE.md: fakes over deep mocking)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from supervisor.announcing.api import SecretUnavailable


@dataclass
class RecordingHost:
    """An AnnouncerHost that records every metric call instead of sending it."""

    node: str = "n1"
    mode: str = "standalone"
    counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    observations: list[tuple[str, tuple[tuple[str, str], ...], float]] = field(default_factory=list)
    removed: list[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=list)

    @property
    def node_name(self) -> str:
        return self.node

    def read_secret(self, namespace: str, name: str) -> Mapping[str, bytes]:
        raise SecretUnavailable(0, f"Secret {namespace}/{name}: RecordingHost reads no Secrets")

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"tests.host.{self.node}")

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0.0) + value

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self.observations.append((name, tuple(sorted(labels.items())), value))

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.gauges.pop(key, None)
        self.counters.pop(key, None)
        self.removed.append(key)

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Live gauge series of one metric name."""
        return {labels: v for (n, labels), v in self.gauges.items() if n == name}
