"""The announcer host driven in a thread with queue.Queue, using the recording plugin."""

from __future__ import annotations

import enum
import ipaddress
import json
import queue
import threading
from pathlib import Path
from typing import Any

import pytest

from supervisor.allocating.results import Assignment
from supervisor.announcing import host
from supervisor.announcing.api import Announcement, AnnouncerView
from supervisor.config.model import Config, ServiceKey
from supervisor.messages import (
    Control,
    MetricKind,
    MetricOp,
    MetricUpdate,
    StatusReport,
    ViewChanged,
    WorkerHeartbeat,
)
from supervisor.supervising.settings import AnnouncerSettings

KEY = ServiceKey(namespace="default", name="web")
VIEW = AnnouncerView(
    node_name="n1", mode="standalone", config=Config(),
    assignments=(Assignment(service=KEY, ips=(ipaddress.ip_address("10.0.0.5"),), pool="p"),),
    members=frozenset({"n1"}), generation=3,
)


@pytest.fixture(autouse=True)
def recording_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("METALLOID_EXTRA_PLUGINS", "tests.recording_plugin:plugin")
    monkeypatch.setenv("METALLOID_RECORDING_LOG", str(log))
    return log


class Running:
    def __init__(self, protocol: str) -> None:
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.outbox: queue.Queue[Any] = queue.Queue()
        self.error: BaseException | None = None
        settings = AnnouncerSettings(name=f"announcer-{protocol}", node_name="n1", protocol=protocol,
                                  heartbeat_seconds=0.05, tick_seconds=0.01)
        self.thread = threading.Thread(target=self._run, args=(settings,), daemon=True)
        self.thread.start()

    def _run(self, settings: AnnouncerSettings) -> None:
        try:
            host.run(settings, self.inbox, self.outbox)
        except BaseException as exc:
            self.error = exc

    def next(self, kind: type, timeout: float = 5.0) -> Any:
        while True:
            message = self.outbox.get(timeout=timeout)
            if isinstance(message, kind):
                return message

    def stop(self) -> None:
        self.inbox.put(Control.STOP)
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_view_in_status_and_metrics_out_stop_hands_over(recording_plugin: Path) -> None:
    w = Running("recording")
    first = w.next(StatusReport)
    assert first.payload["announcements"] == [] and first.payload["sockets_ready"] is True
    w.next(WorkerHeartbeat)
    w.inbox.put(ViewChanged(view=VIEW))
    metric = w.next(MetricUpdate)
    assert metric.name == "metallb_speaker_announced" and ("ip", "10.0.0.5") in metric.labels
    report = w.next(StatusReport)
    assert report.payload["announcements"] == [
        {"service": "default/web", "ip": "10.0.0.5", "protocol": "recording", "node": "n1"}]
    w.stop()
    assert w.error is None
    assert [c["call"] for c in calls(recording_plugin)] == ["start", "update", "stop"]
    assert calls(recording_plugin)[-1]["handover"] is True


def test_unknown_protocol_names_what_is_registered() -> None:
    w = Running("nope")
    w.thread.join(timeout=5)
    assert isinstance(w.error, LookupError)
    assert "'nope'" in str(w.error) and "recording" in str(w.error)


def test_plugin_exception_escapes_so_the_process_exits_nonzero() -> None:
    w = Running("crashy")
    w.next(StatusReport)
    w.inbox.put(ViewChanged(view=VIEW))
    w.thread.join(timeout=5)
    assert isinstance(w.error, RuntimeError)


class ListOutbox:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        self.items.append(obj)


@pytest.mark.parametrize(
    ("call", "kind", "op", "value"),
    [
        (lambda h: h.counter("c", "doc", {"a": "1"}), MetricKind.COUNTER, MetricOp.INC, 1.0),
        (lambda h: h.gauge("c", "doc", {"a": "1"}, 7), MetricKind.GAUGE, MetricOp.SET, 7.0),
        (lambda h: h.observe("c", "doc", {"a": "1"}, 0.2), MetricKind.HISTOGRAM, MetricOp.OBSERVE, 0.2),
        (lambda h: h.remove("c", {"a": "1"}), MetricKind.GAUGE, MetricOp.REMOVE, 0.0),
    ],
    ids=["counter", "gauge", "observe", "remove"],
)
def test_host_metric_calls_become_metric_updates(call: Any, kind: MetricKind, op: MetricOp, value: float) -> None:
    out = ListOutbox()
    call(host.QueueHost(node_name="n1", protocol="x", outbox=out))
    [update] = out.items
    assert (update.name, update.kind, update.op, update.value, update.labels) == ("c", kind, op, value, (("a", "1"),))


def test_jsonable_status() -> None:
    a = Announcement(service=KEY, ip=ipaddress.ip_address("fd00::1"), protocol="layer2", node="n1")
    assert host.jsonable({"announcements": (a,), "set": frozenset({"b", "a"})}) == {
        "announcements": [{"service": "default/web", "ip": "fd00::1", "protocol": "layer2", "node": "n1",
                           "interfaces": [], "reason": "", "peers": []}],
        "set": ["a", "b"],
    }


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Tagged(dict[str, Any]):
    pass


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, True, None, "x"], "b": {"c": ()}},
    {"enum-value": Colour.RED, Colour.RED: "enum key", 3: "int key", None: "none key", Level.HIGH: Level.HIGH},
    [Tagged(x=frozenset({"b", "a"})), (ipaddress.ip_address("10.0.0.1"), KEY)],
    {"nested": [[[{"deep": (1, (2, {"set": {3, 1}}))}]]]},
    Colour.RED, Level.HIGH, Tagged(k=Colour.RED), object,
], ids=["plain", "enums-and-keys", "subclasses", "nested", "str-enum", "int-enum", "dict-subclass", "other"])
def test_jsonable_plain_path_gives_the_generic_answer(value: Any) -> None:
    # The exact-type shortcut for dicts, lists and scalars must not change a single value or type.
    fast = host.jsonable(value)
    generic = host._jsonable(value)
    assert fast == generic
    assert json.dumps(fast, sort_keys=True) == json.dumps(generic, sort_keys=True)
    assert type(fast) is type(generic)


class Counting:
    """An announcer whose status() counts its calls; `payload` is what it reports."""

    protocol = "counting"

    def __init__(self) -> None:
        self.payload: dict[str, Any] = {"announcements": []}
        self.looks = 0
        self.ticks = 0

    def start(self) -> None: ...
    def update(self, view: AnnouncerView) -> None: ...
    def stop(self, *, handover: bool) -> None: ...

    def tick(self, now: float) -> None:
        self.ticks += 1

    def status(self) -> dict[str, Any]:
        self.looks += 1
        return self.payload


def test_ticks_drive_the_plugin_but_its_status_is_looked_at_every_report_every() -> None:
    plugin = Counting()
    core = host.HostCore(worker="announcer-counting", announcer=plugin, report_every=0.25)  # type: ignore[arg-type]
    assert [type(m) for m in core.tick(10.0)] == [StatusReport]  # the first tick looks
    plugin.payload = {"announcements": [], "counter": 1}
    assert list(core.tick(10.05)) == [] and list(core.tick(10.2)) == []  # timers ran, no look yet
    assert (plugin.ticks, plugin.looks) == (3, 1)
    assert [type(m) for m in core.tick(10.25)] == [StatusReport]  # the change, a quarter second on
    assert plugin.looks == 2
    # A view is reported at once, whenever it comes.
    assert StatusReport in [type(m) for m in core.handle(ViewChanged(view=VIEW))]
    assert plugin.looks == 3


def test_a_costly_look_waits_longer_so_the_looks_take_at_most_their_share_of_a_core() -> None:
    # 1,000 Services: a look is 25-35 ms of CPU; every 0.25 s that was a tenth of a core for nothing.
    plugin = Counting()
    cpu = [0.0]

    def costly() -> dict[str, Any]:
        cpu[0] += 0.03  # what this look costs
        plugin.looks += 1
        return {"announcements": [], "looks": plugin.looks}  # changed at every look

    plugin.status = costly  # type: ignore[method-assign]
    core = host.HostCore(worker="announcer-counting", announcer=plugin, report_every=0.25,
                         cpu_clock=lambda: cpu[0])  # type: ignore[arg-type]
    assert [type(m) for m in core.tick(10.0)] == [StatusReport]
    every = 0.03 / host.LOOK_SHARE
    assert every > 0.25
    # Not at the quarter second: 0.03 s of CPU per look, at most LOOK_SHARE of a core.
    assert list(core.tick(10.25)) == [] and list(core.tick(10.0 + every - 0.01)) == []
    assert plugin.looks == 1
    assert [type(m) for m in core.tick(10.0 + every + 0.001)] == [StatusReport]  # it changed: reported
    assert plugin.looks == 2
    # Cheap again: back to every REPORT_SECONDS, never more often.
    plugin.status = lambda: {"announcements": [], "cheap": plugin.ticks}  # type: ignore[method-assign]
    list(core.tick(20.0))
    assert list(core.tick(20.1)) == []
    assert [type(m) for m in core.tick(20.25)] == [StatusReport]  # looked again a quarter second on
    # A view is still reported at once.
    assert StatusReport in [type(m) for m in core.handle(ViewChanged(view=VIEW))]


def test_the_test_kit_default_looks_at_every_tick() -> None:
    plugin = Counting()
    core = host.HostCore(worker="announcer-counting", announcer=plugin)  # type: ignore[arg-type]
    for now in (1.0, 1.01, 1.02):
        list(core.tick(now))
    assert plugin.looks == 3


class SecretReading:
    """Reads its password Secret at start, as a Kubernetes-aware plugin would (plugin API 1.2)."""

    protocol = "secret-reading"

    def __init__(self, host: Any) -> None:
        self.host = host
        self.password: bytes | None = None

    def start(self) -> None:
        if self.host.mode == "kubernetes":
            self.password = self.host.read_secret("metallb-system", "peer")["password"]

    def update(self, view: AnnouncerView) -> None:
        pass

    def tick(self, now: float) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"announcements": []}

    def stop(self, *, handover: bool) -> None:
        pass


def test_the_kit_drives_an_announcer_as_a_kubernetes_speaker_would() -> None:
    from types import SimpleNamespace

    from supervisor.api import AnnouncerRegistry, hookimpl
    from supervisor.plugin_testing import AnnouncerDriver

    @hookimpl
    def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
        registry.add(SecretReading)  # type: ignore[arg-type]

    plugin = SimpleNamespace(metalloid_register_announcers=metalloid_register_announcers)
    driver = AnnouncerDriver(plugin, "secret-reading", mode="kubernetes",
                             secrets={("metallb-system", "peer"): {"password": b"s3cret"}})
    started = driver.start()
    assert isinstance(started, SecretReading) and started.password == b"s3cret"
    assert driver.host.secret_reads == [("metallb-system", "peer")]
    standalone = AnnouncerDriver(plugin, "secret-reading")
    assert standalone.host.mode == "standalone" and standalone.start().password is None  # type: ignore[attr-defined]
