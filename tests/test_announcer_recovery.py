"""The host remembers what an announcer announced, so the next process cleans up after a kill.

Also: the settings handed to the announcer, and the `AnnouncerStatus` contract
checked at every report.
"""

from __future__ import annotations

import ipaddress
import json
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from supervisor.allocating.results import Assignment
from supervisor.announcing import host
from supervisor.announcing.api import Announcer, AnnouncerHost, AnnouncerView, Previous, Recoverable
from supervisor.announcing.recovery import RecoveryStore
from supervisor.config.model import Config, ServiceKey
from supervisor.messages import Control, StatusReport, ViewChanged
from supervisor.plugins_loader import PluginLoadFailure
from supervisor.supervising.settings import AnnouncerSettings

KEY = ServiceKey(namespace="default", name="web")
VIEW = AnnouncerView(node_name="n1", mode="standalone", config=Config(),
                     assignments=(Assignment(service=KEY, ips=(ipaddress.ip_address("10.0.0.5"),), pool="p"),),
                     members=frozenset({"n1"}), generation=1)
WEB = {"service": "default/web", "ip": "10.0.0.5", "protocol": "ext", "node": "n1"}


class External:
    """Keeps 'external' state in a set shared across instances, like routes in a daemon."""

    protocol: ClassVar[str] = "ext"
    outside: ClassVar[set[str]] = set()

    def __init__(self, host: AnnouncerHost) -> None:
        self.host = host
        self.held: set[str] = set()
        self.recovered: list[Previous] = []

    def start(self) -> None:
        pass

    def recover(self, previous: Previous) -> None:
        self.recovered.append(previous)
        for a in previous.announcements:
            External.outside.discard(a["ip"])

    def update(self, view: AnnouncerView) -> None:
        for assignment in view.assignments:
            ip = str(assignment.ips[0])
            self.host.remember({"ips": sorted(self.held | {ip})})
            External.outside.add(ip)
            self.held.add(ip)

    def tick(self, now: float) -> None:
        pass

    def status(self) -> Mapping[str, Any]:
        return {"announcements": [{**WEB, "ip": ip} for ip in sorted(self.held)], "sockets_ready": True}

    def stop(self, *, handover: bool) -> None:
        External.outside -= self.held
        self.held.clear()


def core_for(state_dir: Path, *, failures: list[PluginLoadFailure] | None = None) -> tuple[host.HostCore, External]:
    store = RecoveryStore.for_protocol(str(state_dir), "ext")
    queue_host = host.QueueHost(node_name="n1", protocol="ext", outbox=queue.Queue(), store=store)
    announcer = External(queue_host)
    return host.HostCore(worker="announcer-ext", announcer=announcer, store=store, load_failures=failures), announcer


@pytest.fixture(autouse=True)
def clean_outside() -> None:
    External.outside.clear()


def test_recoverable_is_an_optional_protocol() -> None:
    announcer = External(host.QueueHost(node_name="n1", protocol="ext", outbox=queue.Queue()))
    assert isinstance(announcer, Announcer) and isinstance(announcer, Recoverable)


def test_a_killed_announcers_next_start_withdraws_what_it_had_announced(tmp_path: Path) -> None:
    core, first = core_for(tmp_path)
    first.start()
    assert core.recover() is False  # nothing left behind by anyone
    list(core.report(force=True))
    list(core.handle(ViewChanged(view=VIEW)))
    assert External.outside == {"10.0.0.5"}
    saved = json.loads((tmp_path / "announcers" / "ext.json").read_text())
    assert saved == {"announcements": [WEB], "remembered": {"ips": ["10.0.0.5"]}}
    # SIGKILL: no stop(); a new process starts from the file.
    core, second = core_for(tmp_path)
    second.start()
    assert core.recover() is True
    assert second.recovered == [Previous(announcements=(WEB,), remembered={"ips": ["10.0.0.5"]})]
    assert External.outside == set()
    # Recovered once; a clean stop later leaves nothing to recover.
    list(core.report(force=True))
    second.stop(handover=True)
    core.store.clear()
    assert not (tmp_path / "announcers" / "ext.json").exists()
    core, third = core_for(tmp_path)
    assert core.recover() is False and third.recovered == []


def test_a_recover_that_raises_is_retried_on_the_next_start(tmp_path: Path) -> None:
    core, _ = core_for(tmp_path)
    list(core.handle(ViewChanged(view=VIEW)))
    core, second = core_for(tmp_path)

    def broken(previous: Previous) -> None:
        raise ConnectionError("the router is down")
    second.recover = broken  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        core.recover()
    core, third = core_for(tmp_path)
    assert core.recover() is True and len(third.recovered[0].announcements) == 1


def test_an_announcer_without_recover_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = RecoveryStore.for_protocol(str(tmp_path), "ext")
    store.announced([WEB])

    class Plain(External):
        recover = None  # type: ignore[assignment]

    announcer = Plain(host.QueueHost(node_name="n1", protocol="ext", outbox=queue.Queue()))
    assert not isinstance(announcer, Recoverable)
    core = host.HostCore(worker="announcer-ext", announcer=announcer, store=store)
    assert core.recover() is False
    assert "announcer.unclean_end worker=announcer-ext announcements=1" in caplog.text
    assert not (tmp_path / "announcers" / "ext.json").exists()


def test_an_unreadable_file_still_gets_a_recover_call(tmp_path: Path) -> None:
    (tmp_path / "announcers").mkdir()
    (tmp_path / "announcers" / "ext.json").write_text("{half")
    core, announcer = core_for(tmp_path)
    assert core.recover() is True and announcer.recovered == [Previous()]


def test_without_a_state_dir_nothing_is_kept(tmp_path: Path) -> None:
    store = RecoveryStore.for_protocol(None, "ext")
    store.announced([WEB])
    store.remember({"x": 1})
    assert store.load() is None


@pytest.mark.parametrize(("payload", "problems"), [
    ({"announcements": [WEB], "sockets_ready": True}, []),
    ({"announcements": []}, []),
    ({}, ['has no "announcements" list']),
    ({"announcements": [{"service": "a/b"}]}, ["announcements[0] lacks string field(s) ip, protocol, node"]),
    ({"announcements": [], "sockets_ready": "yes"}, ['"sockets_ready" is not true or false']),
    ([1], ["returned list, not a mapping"]),
])
def test_the_status_contract(payload: Any, problems: list[str]) -> None:
    assert host.status_problems(payload) == problems


def test_reports_carry_the_hosts_own_findings(tmp_path: Path) -> None:
    failure = PluginLoadFailure(name="typo", value="x:y", reason="unknown hook metalloid_x", hook="metalloid_x")
    core, announcer = core_for(tmp_path, failures=[failure])
    announcer.status = lambda: {"announcements": "none"}  # type: ignore[method-assign,assignment,return-value]
    [report] = list(core.report(force=True))
    assert isinstance(report, StatusReport)
    assert report.payload["_host"] == {
        "load_failures": [{"plugin": "typo", "value": "x:y", "hook": "metalloid_x",
                           "reason": "unknown hook metalloid_x"}],
        "status_errors": ['has no "announcements" list']}


def test_the_process_hands_the_settings_over_and_forgets_on_a_clean_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLOID_EXTRA_PLUGINS", "tests.recording_plugin:plugin")
    inbox: queue.Queue[Any] = queue.Queue()
    outbox: queue.Queue[Any] = queue.Queue()
    settings = AnnouncerSettings(name="announcer-recording", node_name="n1", protocol="recording",
                              state_dir=str(tmp_path), announcer_settings_json='{"mode": "quiet"}',
                              heartbeat_seconds=0.05, tick_seconds=0.01)
    seen: dict[str, Any] = {}
    original = host.build_announcer

    def spy(protocol: str, queue_host: host.QueueHost, failures: Any = None) -> Announcer:
        seen["settings"] = dict(queue_host.settings)
        return original(protocol, queue_host, failures)

    monkeypatch.setattr(host, "build_announcer", spy)
    thread = threading.Thread(target=host.run, args=(settings, inbox, outbox), daemon=True)
    thread.start()
    inbox.put(ViewChanged(view=VIEW))
    path = tmp_path / "announcers" / "recording.json"
    while True:
        message = outbox.get(timeout=5)
        if isinstance(message, StatusReport) and message.payload["announcements"]:
            break
    assert json.loads(path.read_text())["announcements"][0]["ip"] == "10.0.0.5"
    inbox.put(Control.STOP)
    thread.join(timeout=5)
    assert seen["settings"] == {"mode": "quiet"}
    assert not path.exists()
