"""A kind's watch thread survives what the API hands it: malformed objects, watches that end at once.

Driven with a scripted client and a stop event that records each backoff
wait instead of sleeping, so `_watch_kind` runs synchronously in the test.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from supervisor.kubernetes import kinds
from supervisor.kubernetes.watcher import WATCH_CRASHES, KubeWatcher, WatchOptions

SERVICE = {"metadata": {"namespace": "default", "name": "web", "resourceVersion": "3"}, "spec": {}}


class RecordingStop(threading.Event):
    """The watcher's stop event: every backoff wait is recorded and returns at once."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


class ScriptedClient:
    """Answers lists and watches from scripts; `on_watch` may stop the watcher."""

    def __init__(self, lists: list[list[Any]], watches: Callable[[int], list[dict[str, Any]]]) -> None:
        self.lists, self.watches = lists, watches
        self.list_calls = 0
        self.watch_calls = 0

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, timeout: float = 10.0,
                **_: Any) -> dict[str, Any]:  # fmt: skip
        items = self.lists[min(self.list_calls, len(self.lists) - 1)]
        self.list_calls += 1
        return {"metadata": {"resourceVersion": "1"}, "items": items}

    def watch(self, path: str, *, query: Mapping[str, Any], timeout: float,
              on_open: Callable[[Any], None] | None = None) -> Iterator[dict[str, Any]]:  # fmt: skip
        self.watch_calls += 1
        yield from self.watches(self.watch_calls)


def watcher(client: ScriptedClient, metrics: list[tuple[str, float]]) -> tuple[KubeWatcher, RecordingStop]:
    w = KubeWatcher(client, WatchOptions(), lambda message: None,  # type: ignore[arg-type]
                    metric=lambda name, value: metrics.append((name, value)))  # fmt: skip
    stop = RecordingStop()
    w.stopping = stop
    return w, stop


def test_a_malformed_object_does_not_kill_the_watch_it_relists_after_backoff(caplog: pytest.LogCaptureFixture) -> None:
    metrics: list[tuple[str, float]] = []
    malformed = {"metadata": "not-an-object"}
    client = ScriptedClient([[malformed], [SERVICE]], lambda n: [])
    w, stop = watcher(client, metrics)

    def watches(n: int) -> list[dict[str, Any]]:
        stop.set()  # listed again and watching: enough
        return []

    client.watches = watches
    with caplog.at_level(logging.ERROR, logger="supervisor.kubernetes.watcher"):
        w._watch_kind(kinds.SERVICE)
    assert client.list_calls == 2, "the kind is listed again after the crash"
    assert w.cache.get("Service", "default", "web") is not None
    assert metrics == [(WATCH_CRASHES, 1.0)] and w.crashes == 1
    assert stop.waits and stop.waits[0] > 0, "the re-list waits a backoff first"
    crashed = [r for r in caplog.records if r.getMessage().startswith("watch.crashed kind=Service error=")]
    assert crashed and crashed[0].exc_info is not None, "logged with the traceback"


def test_a_malformed_event_does_not_kill_the_watch() -> None:
    metrics: list[tuple[str, float]] = []
    client = ScriptedClient([[SERVICE]], lambda n: [])
    w, stop = watcher(client, metrics)

    def watches(n: int) -> list[dict[str, Any]]:
        if n == 1:
            return [{"type": "MODIFIED", "object": {"metadata": ["bad"]}}]
        stop.set()
        return []

    client.watches = watches
    w._watch_kind(kinds.SERVICE)
    assert client.list_calls == 2 and metrics == [(WATCH_CRASHES, 1.0)]


def test_a_watch_that_ends_at_once_without_events_backs_off() -> None:
    client = ScriptedClient([[SERVICE]], lambda n: [])
    w, stop = watcher(client, [])

    def watches(n: int) -> list[dict[str, Any]]:
        if n > 50:  # without a backoff this is a tight loop: end it, the assertions fail
            stop.set()
        return []

    client.watches = watches
    stop_after = 3

    def wait(timeout: float | None = None) -> bool:
        stop.waits.append(timeout or 0.0)
        if len(stop.waits) >= stop_after:
            stop.set()
        return stop.is_set()

    stop.wait = wait  # type: ignore[method-assign]
    w._watch_kind(kinds.SERVICE)
    assert len(stop.waits) == stop_after and client.watch_calls == stop_after
    assert all(delay > 0 for delay in stop.waits)
    assert stop.waits[0] < stop.waits[-1], "the delay grows while the watches keep ending at once"


def test_a_watch_that_delivered_events_reconnects_at_once() -> None:
    client = ScriptedClient([[SERVICE]], lambda n: [])
    w, stop = watcher(client, [])

    def watches(n: int) -> list[dict[str, Any]]:
        if n >= 3:
            stop.set()
        return [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(10 + n)}}}]

    client.watches = watches
    w._watch_kind(kinds.SERVICE)
    assert client.watch_calls == 3 and stop.waits == []
