"""The plugin written from docs/plugins.md is validated everywhere a config is accepted.

The third-party example (examples/thirdparty, installed by ./dev setup as an
entry point, so nothing here registers it by hand) rejects `retries: 99` with
its own `metalloid_validate_config` hook. Each path that accepts a config must
run that hook and refuse the config: `metalloid check` and `plan` (exit 1),
the file watcher's loader (every reload of `metalloid run`; the real-process
reload is in test_plugin_process.py), and in Kubernetes mode the controller
(a Warning Event InvalidConfiguration on the AnnouncerConfig) and the speaker
(its watcher sends ConfigRejected, so the last good config stays in force).
The controller and speaker are built by the same functions the worker
process runs (`_controller`, `_speaker`), so their plugin wiring is what is
tested, not a validator handed in by the test.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

import pytest

from supervisor import cli
from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.worker import _controller, _speaker
from supervisor.messages import ConfigLoaded, ConfigRejected
from supervisor.supervising.settings import ControllerSettings, SpeakerSettings
from supervisor.watching.loader import default_loader
from tests.fakeapi import FakeApiServer
from tests.runtime_helpers import wait_for

pytest.importorskip("metalloid_example_plugin")

POOL = ("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
        "spec: {addresses: [10.0.0.0/24]}\n")
EXAMPLE = ("---\napiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {name: example}\n"
           "spec:\n  settings:\n    directory: /run/example\n    retries: 99\n")
# The example's own message for the bad setting (metalloid_example_plugin.metalloid_validate_config).
PLUGIN_SAYS = "AnnouncerConfig/example: spec.settings.retries: 99 is not a whole number from 0 to 10"


def announcer_config(retries: int) -> dict[str, Any]:
    return {"apiVersion": "metalloid.io/v1alpha1", "kind": "AnnouncerConfig",
            "metadata": {"name": "example", "namespace": "metallb-system"},
            "spec": {"settings": {"directory": "/run/example/{node}", "retries": retries}}}


@pytest.fixture()
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(POOL + EXAMPLE)
    return path


def test_check_rejects_it(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(bad_file)]) == 1
    assert f"{bad_file}:12: {PLUGIN_SAYS}" in capsys.readouterr().out
    bad_file.write_text(POOL + EXAMPLE.replace("99", "3"))
    assert cli.main(["check", str(bad_file)]) == 0


def test_plan_rejects_it(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plan", str(bad_file)]) == 1
    assert f"{bad_file}:12: {PLUGIN_SAYS}" in capsys.readouterr().err


def test_every_reload_of_the_file_watcher_rejects_it(bad_file: Path) -> None:
    config, diagnostics = default_loader("n1")([str(bad_file)])
    assert config is None
    assert f"{bad_file}:12: {PLUGIN_SAYS}" in [str(d) for d in diagnostics]


def test_the_controller_rejects_it_with_an_event_on_the_announcer_config(runbook_api: FakeApiServer) -> None:
    runbook_api.create(announcer_config(99))
    sent: queue.Queue[Any] = queue.Queue()
    client = RawClient.connect(host=runbook_api.url)
    stop, _ = _controller(ControllerSettings(name="watcher", node_name="c1"), client, sent.put,
                          lambda name, value: None)
    try:
        events = wait_for(lambda: [e for e in runbook_api.list("Event", "metallb-system")
                                   if e["reason"] == "InvalidConfiguration"], timeout=20,
                          what="the controller's InvalidConfiguration Event")
        assert [(e["involvedObject"]["kind"], e["involvedObject"]["name"], e["type"]) for e in events] == [
            ("AnnouncerConfig", "example", "Warning")]
        assert "spec.settings.retries: 99 is not a whole number from 0 to 10" in events[0]["message"]
        assert any(isinstance(m, ConfigRejected) and any(PLUGIN_SAYS in str(d) for d in m.diagnostics)
                   for m in drain(sent))
    finally:
        stop()
        client.close()


def test_the_speaker_rejects_it_and_accepts_it_fixed(runbook_api: FakeApiServer) -> None:
    runbook_api.create(announcer_config(99))
    sent: queue.Queue[Any] = queue.Queue()
    client = RawClient.connect(host=runbook_api.url)
    stop, _ = _speaker(SpeakerSettings(name="watcher", node_name="n1"), client, sent.put, lambda name, value: None)
    try:
        rejected = next_of(sent, (ConfigLoaded, ConfigRejected))
        assert isinstance(rejected, ConfigRejected)
        assert f"kubernetes:0: {PLUGIN_SAYS}" in [str(d) for d in rejected.diagnostics]
        runbook_api.store.update(runbook_api.store_resource("AnnouncerConfig"), "metallb-system", "example",
                                 announcer_config(3), subresource=None)
        loaded = next_of(sent, (ConfigLoaded,))
        example = loaded.config.announcer("example")
        assert example is not None and example.settings["retries"] == 3
    finally:
        stop()
        client.close()


def next_of(sent: queue.Queue[Any], kinds: tuple[type, ...]) -> Any:
    while True:
        message = sent.get(timeout=20)
        if isinstance(message, kinds):
            return message


def drain(sent: queue.Queue[Any]) -> list[Any]:
    found = []
    while not sent.empty():
        found.append(sent.get_nowait())
    return found
