"""A plugin written from docs/plugins.md, run by real `metalloid run` processes (no root, no network).

The third-party example plugin (examples/thirdparty, installed by ./dev setup)
is enabled and configured by the config alone: its AnnouncerConfig (layer 2 is
turned off the same way, so nothing here touches a real interface). These
tests show that it gets its settings, that a crash loop makes it FAILED
without stopping the node, that a fixed AnnouncerConfig revives it, that it
cleans up after a SIGKILL, and that a hang is visible in /readyz before the
kill (its own hang deadline, from the config). Every process is stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.runtime_helpers import config_text, descendants_of, get_text, pid_alive, wait_for
from tests.test_supervisor_process import Node

pytest.importorskip("metalloid_example_plugin")

LAYER2_OFF = """\
---
apiVersion: metalloid.io/v1alpha1
kind: AnnouncerConfig
metadata:
  name: layer2
spec:
  enabled: false
"""


def example(directory: Path, extra: str = "") -> str:
    return f"""\
---
apiVersion: metalloid.io/v1alpha1
kind: AnnouncerConfig
metadata:
  name: example
spec:
  settings:
    directory: {directory}
    retries: 1
{extra}"""


def routes(directory: Path) -> set[str]:
    return {json.loads(p.read_text())["service"] for p in directory.glob("*.json")}


def rows(node: Node) -> dict[str, dict[str, Any]]:
    return {a["protocol"]: a for a in node.status()["announcers"]}


def test_enabled_and_configured_by_the_config_then_cleans_up_after_sigkill(tmp_path: Path) -> None:
    directory = tmp_path / "routes"
    node = Node(tmp_path, announcers=None, config=config_text(3) + LAYER2_OFF + example(directory))
    try:
        node.wait_ready()
        announcers = rows(node)
        assert announcers["example"]["state"] == "RUNNING"
        assert announcers["example"]["reason"].startswith("enabled by AnnouncerConfig/example at ")
        assert announcers["layer2"]["enabled"] is False and "recording" not in announcers
        assert [w["name"] for w in node.status()["workers"] if w["name"].startswith("announcer-")] == [
            "announcer-example"]
        wait_for(lambda: routes(directory) == {"default/svc-0", "default/svc-1", "default/svc-2"}, 10,
                 what=f"the routes; log:\n{node.log()}")
        # SIGKILL the announcer and the supervisor together (as systemd's final SIGKILL or a
        # cgroup OOM kill would): no stop() anywhere, the routes stay behind.
        children = descendants_of(node.proc.pid)
        os.kill(node.workers()["announcer-example"]["pid"], signal.SIGKILL)
        node.proc.kill()
        node.proc.wait(timeout=10)
        wait_for(lambda: not any(pid_alive(p) for p in children), 10, what="the workers died with it")
        assert routes(directory) == {"default/svc-0", "default/svc-1", "default/svc-2"}
    finally:
        node.close()
    # While it was down, svc-0 was deleted: the restarted node must withdraw its route.
    (tmp_path / "calls.jsonl").unlink(missing_ok=True)
    again = Node(tmp_path, announcers=None, config=config_text(0, names=["svc-1", "svc-2"]) + LAYER2_OFF
                 + example(directory))
    try:
        again.wait_ready()
        wait_for(lambda: routes(directory) == {"default/svc-1", "default/svc-2"}, 10,
                 what=f"svc-0's route removed; log:\n{again.log()}")
        assert "announcer.recovering worker=announcer-example announcements=3" in again.log()
        # A clean stop (SIGTERM) withdraws everything and leaves nothing to recover.
        again.proc.send_signal(signal.SIGTERM)
        assert again.proc.wait(timeout=15) == 0
        assert routes(directory) == set()
        assert not (tmp_path / "state" / "announcers" / "example.json").exists()
    finally:
        again.close()


def test_a_crash_loop_is_failed_then_a_fixed_config_revives_it(tmp_path: Path) -> None:
    taken = tmp_path / "not-a-directory"
    taken.write_text("a file where the routes should go: every start() fails")
    directory = tmp_path / "routes"
    node = Node(tmp_path, announcers="recording,example", extra_args=("--restart-budget", "2"),
                config=config_text(2) + example(taken))
    try:
        wait_for(lambda: rows(node)["example"]["state"] == "FAILED", 30, what=f"FAILED; log:\n{node.log()}")
        assert "NotADirectoryError" in (rows(node)["example"]["last_error"] or "") or \
            "FileExistsError" in (rows(node)["example"]["last_error"] or "")
        assert rows(node)["recording"]["state"] == "RUNNING" and node.proc.poll() is None
        assert get_text(f"{node.url}/readyz")[0] == 503
        node.config.write_text(config_text(2) + example(directory))
        wait_for(lambda: routes(directory) == {"default/svc-0", "default/svc-1"}, 15,
                 what=f"revived; log:\n{node.log()}")
        assert rows(node)["example"]["state"] in ("STARTING", "RUNNING")
        wait_for(node.ready, 10, what="ready again")
        assert 'metalloid_announcer_failed{announcer="example"} 0' in get_text(f"{node.url}/metrics")[1].splitlines()
    finally:
        node.close()


def test_a_reload_the_plugin_rejects_keeps_the_last_good_settings(tmp_path: Path) -> None:
    directory = tmp_path / "routes"
    node = Node(tmp_path, announcers=None, config=config_text(2) + LAYER2_OFF + example(directory))
    try:
        node.wait_ready()
        pid = node.workers()["announcer-example"]["pid"]
        bad = config_text(2) + LAYER2_OFF + example(directory).replace("retries: 1", "retries: 99")
        node.config.write_text(bad)
        wait_for(lambda: node.status()["config"]["stale"], 10, what=f"the reload rejected; log:\n{node.log()}")
        line = bad.splitlines().index("    retries: 99") + 1
        assert node.status()["config"]["errors"] == [
            f"{node.config}:{line}: AnnouncerConfig/example: spec.settings.retries: 99 is not a whole number "
            "from 0 to 10"]
        # The last good config stays in force: the announcer was not restarted and keeps its routes.
        assert node.workers()["announcer-example"]["pid"] == pid
        assert routes(directory) == {"default/svc-0", "default/svc-1"}
    finally:
        node.close()


def test_a_plugin_that_fails_to_load_is_named_with_its_hook_in_status(tmp_path: Path) -> None:
    node = Node(tmp_path, announcers="recording", config=config_text(1),
                env={"METALLOID_EXTRA_PLUGINS": "tests.recording_plugin:plugin,tests.recording_plugin:misspelled"})
    try:
        status = node.wait_ready()
        [error] = status["plugin_errors"]
        assert error["plugin"] == "tests.recording_plugin:misspelled"
        assert error["hook"] == "metalloid_validate_confg"
        assert "unknown hook" in error["reason"]
        # The watcher, which runs the plugins' checks, names it in the config's warnings too.
        assert any("Plugin/tests.recording_plugin:misspelled" in w and "(hook metalloid_validate_confg)" in w
                   for w in status["config"]["warnings"])
    finally:
        node.close()


def test_reloads_start_restart_and_stop_an_announcer(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    node = Node(tmp_path, announcers=None, config=config_text(2) + LAYER2_OFF)
    try:
        node.wait_ready()
        assert "example" not in rows(node)  # installed, not configured: not running
        node.config.write_text(config_text(2) + LAYER2_OFF + example(first))
        wait_for(lambda: routes(first) == {"default/svc-0", "default/svc-1"}, 15, what=f"started; {node.log()}")
        pid = node.workers()["announcer-example"]["pid"]
        # New settings: a graceful stop (its routes withdrawn), then a start that sees them.
        node.config.write_text(config_text(2) + LAYER2_OFF + example(second))
        wait_for(lambda: routes(second) == {"default/svc-0", "default/svc-1"}, 15, what=f"restarted; {node.log()}")
        assert routes(first) == set()
        assert node.workers()["announcer-example"]["pid"] != pid
        assert node.workers()["announcer-example"]["restarts"] >= 1
        # Disabled: stopped gracefully, and gone from the workers; /readyz does not wait for it.
        node.config.write_text(config_text(2) + LAYER2_OFF + example(second, "  enabled: false\n"))
        wait_for(lambda: routes(second) == set(), 15, what=f"stopped; {node.log()}")
        wait_for(lambda: "announcer-example" not in node.workers(), 10)
        assert rows(node)["example"]["enabled"] is False
        wait_for(node.ready, 10, what="ready without it")
    finally:
        node.close()


def test_a_hang_is_visible_in_readyz_before_its_own_deadline_kills_it(tmp_path: Path) -> None:
    crashy = ("---\napiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {name: crashy}\n"
              "spec: {hangTimeoutSeconds: 6}\n")
    node = Node(tmp_path, announcers="recording,crashy", config=config_text(2) + crashy,
                env={"METALLOID_CRASHY_MODE": "hang"})
    try:
        def not_responding() -> bool:
            code, why = get_text(f"{node.url}/readyz")
            return code == 503 and "announcer announcer-crashy is not responding" in why
        wait_for(not_responding, 15, what=f"readyz says it hangs; log:\n{node.log()}")
        assert rows(node)["crashy"]["state"] == "NOT-RESPONDING"
        assert rows(node)["crashy"]["hang_timeout_seconds"] == 6
        wait_for(lambda: node.workers()["announcer-crashy"]["restarts"] >= 1, 15, what="killed and restarted")
        assert node.workers()["announcer-crashy"]["last_error"] == "hung: no heartbeat for 6s, killed"
    finally:
        node.close()


def test_kill_9_of_the_announcer_alone_recovers_in_its_next_process(tmp_path: Path) -> None:
    directory = tmp_path / "routes"
    node = Node(tmp_path, announcers="example", config=config_text(2) + example(directory))
    try:
        node.wait_ready()
        wait_for(lambda: len(routes(directory)) == 2, 10)
        pid = node.workers()["announcer-example"]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: node.workers()["announcer-example"]["pid"] not in (None, pid), 10)
        wait_for(lambda: "announcer.recovered worker=announcer-example" in node.log(), 10)
        wait_for(lambda: routes(directory) == {"default/svc-0", "default/svc-1"}, 10)
    finally:
        node.close()
