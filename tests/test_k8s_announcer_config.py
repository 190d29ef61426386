"""Kubernetes mode: AnnouncerConfig objects are read and validated, a FAILED announcer is an Event."""

from __future__ import annotations

import json
import queue
from typing import Any

from supervisor.api import Config, Diagnostic, setting_error
from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.watcher import KubeWatcher, WatchOptions, build_config
from supervisor.kubernetes.worker import ANNOUNCER_FAILED_REASON, _speaker
from supervisor.messages import AnnouncerFailed, ConfigLoaded, ConfigRejected
from supervisor.roles import Mode
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.settings import AnnouncerSettings, SpeakerSettings
from supervisor.supervising.state import WATCHER
from supervisor.supervising.supervisor import Supervisor, SupervisorSettings, WorkerSpec
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import events_for, running_controller
from tests.runtime_helpers import wait_for

EXAMPLE = {"apiVersion": "metalloid.io/v1alpha1", "kind": "AnnouncerConfig",
           "metadata": {"name": "example", "namespace": "metallb-system"},
           "spec": {"settings": {"directory": "/run/example/{node}", "retries": 2}}}
OPTIONS = WatchOptions(debounce_seconds=0.02, watch_timeout_seconds=5, backoff_max_seconds=0.3)


def next_of(out: queue.Queue[Any], kind: type) -> Any:
    while True:
        message = out.get(timeout=10)
        if isinstance(message, kind):
            return message


def strict(config: Config) -> list[Diagnostic]:
    return [setting_error(a, "retries", "more than 5") for a in config.announcers if a.settings.get("retries", 0) > 5]


def test_the_watcher_reads_and_validates_announcer_configs(runbook_api: FakeApiServer) -> None:
    runbook_api.create(EXAMPLE)
    out: queue.Queue[Any] = queue.Queue()
    watcher = KubeWatcher(RawClient.connect(host=runbook_api.url), OPTIONS, out.put, validators=[strict])
    watcher.start()
    try:
        loaded = next_of(out, ConfigLoaded)
        example = loaded.config.announcer("example")
        assert example is not None and example.settings == EXAMPLE["spec"]["settings"]
        runbook_api.create({**EXAMPLE, "metadata": {"name": "other", "namespace": "metallb-system"},
                    "spec": {"settings": {"retries": 9}}})
        rejected = next_of(out, ConfigRejected)
        assert [str(d) for d in rejected.diagnostics] == [
            "kubernetes:0: AnnouncerConfig/other: spec.settings.retries: more than 5"]
    finally:
        watcher.stop()


def test_a_failed_announcer_is_a_warning_event_on_the_node(runbook_api: FakeApiServer) -> None:
    runbook_api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    settings = SpeakerSettings(name="watcher", node_name="n1")
    client = RawClient.connect(host=runbook_api.url)
    stop, on_message = _speaker(settings, client, lambda message: None, lambda name, value: None)
    try:
        on_message(AnnouncerFailed(protocol="example", error="NotADirectoryError: /run/x"))
        wait_for(lambda: events_for(runbook_api, "n1"), timeout=10)
        [event] = events_for(runbook_api, "n1")
        assert event["reason"] == ANNOUNCER_FAILED_REASON and event["type"] == "Warning"
        assert event["involvedObject"]["kind"] == "Node"
        assert "announcer example is FAILED" in event["message"] and "NotADirectoryError" in event["message"]
    finally:
        stop()


def test_the_controller_reports_an_invalid_announcer_config_on_it(runbook_api: FakeApiServer) -> None:
    with running_controller(runbook_api):
        runbook_api.create({**EXAMPLE, "spec": {"enabled": "yes"}})
        events = wait_for(lambda: [e for e in runbook_api.list("Event", "metallb-system")
                                   if e["reason"] == "InvalidConfiguration"], timeout=10)
        assert events[0]["type"] == "Warning"
        assert events[0]["involvedObject"]["kind"] == "AnnouncerConfig"
        assert events[0]["involvedObject"]["name"] == "example"
        assert "spec.enabled: expected true or false" in events[0]["message"]


def test_the_speaker_starts_the_announcer_with_the_resources_settings_and_hang_deadline() -> None:
    """The AnnouncerConfig resource, as the speaker's watcher reads it, is what the announcer process is given."""
    resource = {**EXAMPLE, "spec": {**EXAMPLE["spec"], "hangTimeoutSeconds": 7}}
    config, diagnostics = build_config([resource], lb_class=None)
    assert diagnostics == []
    template = AnnouncerSettings(name="announcer", node_name="n1", mode=Mode.KUBERNETES, state_dir="/tmp/metalloid")
    watcher = WorkerSpec(name="watcher", role=WATCHER, entry="x:y",
                         settings=SpeakerSettings(name="watcher", node_name="n1"))  # fmt: skip
    sup = Supervisor([watcher], SupervisorSettings(node_name="n1", mode=Mode.KUBERNETES, announcer_template=template),
                     metrics=MetricsRegistry(process_metrics=False))
    spawned: list[WorkerSpec] = []
    sup._spawn = lambda slot: spawned.append(slot.spec)  # type: ignore[method-assign]
    with sup.lock:
        sup._route(sup._slots[0], ConfigLoaded(generation=1, config=config, origin="kubernetes"))
    [spec] = spawned
    assert isinstance(spec.settings, AnnouncerSettings)
    assert (spec.name, spec.settings.protocol) == ("announcer-example", "example")
    assert json.loads(spec.settings.announcer_settings_json) == EXAMPLE["spec"]["settings"]
    assert spec.settings.hang_timeout_seconds == 7
    assert [d.reason for d in sup._decisions.values()] == ["enabled by AnnouncerConfig/example at kubernetes:0"]
