"""The example plugin's own tests: only `supervisor.api` and the public testing kit.

They drive the announcer the way metalloid's announcer host does (settings
from the config, the real plugin checks, the status contract checked at every
report, the host's recovery file) without processes.
"""

from __future__ import annotations

import json
from pathlib import Path

import metalloid_example_plugin as plugin
import pytest

from supervisor.api import Announcer
from supervisor.plugin_fixtures import DriverFactory
from supervisor.plugin_testing import ConfigError, config_from_yaml, make_view, registered_announcers, validate

POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [10.0.10.10-10.0.10.20]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
---
"""
NODES = "".join(f"""apiVersion: v1
kind: Node
metadata: {{name: {n}}}
status: {{addresses: [{{type: InternalIP, address: 10.0.10.{i}}}]}}
---
""" for i, n in enumerate(("n1", "n2", "n3"), start=1))


def service(name: str, ip: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default, annotations: {{metallb.io/loadBalancerIPs: {ip}}}}}
spec: {{type: LoadBalancer, ports: [{{port: 80}}]}}
---
"""


def announcer_config(settings: str) -> str:
    return f"""apiVersion: metalloid.io/v1alpha1
kind: AnnouncerConfig
metadata:
  name: example
spec:
  settings:
{settings}"""


def cluster(directory: Path, *services: str) -> str:
    return POOL + NODES + "".join(services) + announcer_config(f"    directory: {directory}\n    retries: 2\n")


# MetalLB's ranking among n1..n3: n3 wins 10.0.10.10, n1 wins 10.0.10.11.
WEB = service("web", "10.0.10.10")
DB = service("db", "10.0.10.11")


def routes(directory: Path) -> set[tuple[str, str]]:
    return {(d["service"], d["ip"]) for d in (json.loads(p.read_text()) for p in directory.glob("*.json"))}


def test_the_hook_registers_an_announcer() -> None:
    announcers = registered_announcers(plugin)
    assert list(announcers) == ["example"]


def test_settings_are_validated_with_file_and_line(tmp_path: Path) -> None:
    text = POOL + announcer_config("    directory: relative/dir\n    retries: 99\n    colour: blue\n")
    with pytest.raises(ConfigError) as raised:
        config_from_yaml(text, file="node.yaml", plugin=plugin)
    messages = [str(d) for d in raised.value.diagnostics]
    assert messages == [
        "node.yaml:16: AnnouncerConfig/example: spec.settings.directory: 'relative/dir' is relative; write an "
        "absolute path such as /run/metalloid-example",
        "node.yaml:17: AnnouncerConfig/example: spec.settings.retries: 99 is not a whole number from 0 to 10",
        "node.yaml:18: AnnouncerConfig/example: spec.settings.colour: is not a setting of the example announcer; "
        "it has directory and retries",
    ]


def test_a_missing_directory_points_at_the_settings(tmp_path: Path) -> None:
    config = config_from_yaml(POOL + announcer_config("    retries: 1\n"), file="node.yaml")
    assert [str(d) for d in validate(plugin, config)] == [
        "node.yaml:15: AnnouncerConfig/example: spec.settings.directory: is missing; set the absolute path of "
        "the directory the routes are kept in"]


def test_no_announcer_config_means_nothing_to_check() -> None:
    assert validate(plugin, config_from_yaml(POOL)) == []


def test_the_winner_creates_a_route_and_reports_it(tmp_path: Path, announcer_driver: DriverFactory) -> None:
    routes_dir = tmp_path / "routes"
    config = config_from_yaml(cluster(routes_dir, WEB, DB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    assert isinstance(driver.start(), Announcer)
    status = driver.update(make_view(config, "n3"))
    assert driver.announced() == {("default/web", "10.0.10.10")}
    assert routes(routes_dir) == {("default/web", "10.0.10.10")}
    assert status["sockets_ready"] is True
    labels = (("ip", "10.0.10.10"), ("node", "n3"), ("protocol", "example"), ("service", "default/web"))
    assert driver.host.gauges("metallb_speaker_announced") == {labels: 1}


def test_a_dead_winner_hands_the_route_to_exactly_one_other(
        tmp_path: Path, announcer_driver: DriverFactory) -> None:
    drivers, configs = {}, {}
    for node in ("n1", "n2"):
        configs[node] = config_from_yaml(cluster(tmp_path / node, WEB), plugin=plugin)
        drivers[node] = announcer_driver(plugin, "example", node_name=node, config=configs[node])
        drivers[node].start()
        drivers[node].update(make_view(configs[node], node))
        assert drivers[node].announced() == set()  # n3 wins while alive
    for node, driver in drivers.items():
        driver.update(make_view(configs[node], node, members=frozenset({"n1", "n2"}), generation=2))
    owners = [node for node, driver in drivers.items() if driver.announced() == {("default/web", "10.0.10.10")}]
    assert len(owners) == 1
    assert all(routes(tmp_path / node) == drivers[node].announced() for node in drivers)


def test_stop_removes_every_route_and_series(tmp_path: Path, announcer_driver: DriverFactory) -> None:
    routes_dir = tmp_path / "routes"
    config = config_from_yaml(cluster(routes_dir, WEB, DB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    driver.start()
    driver.update(make_view(config, "n3"))
    driver.stop()
    assert routes(routes_dir) == set()
    assert driver.host.gauges("metallb_speaker_announced") == {}


def test_after_a_kill_the_next_start_removes_what_is_no_longer_ours(
        tmp_path: Path, announcer_driver: DriverFactory) -> None:
    routes_dir = tmp_path / "routes"
    config = config_from_yaml(cluster(routes_dir, WEB, DB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    driver.start()
    driver.update(make_view(config, "n3"))
    driver.kill()  # SIGKILL: no stop(), the route stays behind
    assert routes(routes_dir) == {("default/web", "10.0.10.10")}
    # Meanwhile the Service went away; the new process must not leave its route behind.
    smaller = config_from_yaml(cluster(routes_dir, DB), plugin=plugin)
    driver.start()
    assert driver.recovered is not None
    assert [(a["service"], a["ip"]) for a in driver.recovered.announcements] == [("default/web", "10.0.10.10")]
    assert routes(routes_dir) == set()
    driver.update(make_view(smaller, "n3"))
    assert routes(routes_dir) == set()


def test_a_kill_between_remember_and_write_is_cleaned_up_too(
        tmp_path: Path, announcer_driver: DriverFactory) -> None:
    routes_dir = tmp_path / "routes"
    config = config_from_yaml(cluster(routes_dir, WEB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    announcer = driver.start()
    assert isinstance(announcer, plugin.ExampleAnnouncer)
    # The write-ahead record alone (as if killed right after host.remember, before any status).
    driver.host.remember({"routes": [["default/web", "10.0.10.10"]]})
    (routes_dir / "default_web_10.0.10.10.json").write_text("{}")
    driver.kill()
    driver.start()
    assert driver.recovered is not None and driver.recovered.remembered == {"routes": [["default/web", "10.0.10.10"]]}
    assert not (routes_dir / "default_web_10.0.10.10.json").exists()


def test_a_clean_stop_leaves_nothing_to_recover(tmp_path: Path, announcer_driver: DriverFactory) -> None:
    config = config_from_yaml(cluster(tmp_path / "routes", WEB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    driver.start()
    driver.update(make_view(config, "n3"))
    driver.stop()
    driver.start()
    assert driver.recovered is None


def test_failed_writes_are_retried_then_give_up(tmp_path: Path, announcer_driver: DriverFactory) -> None:
    routes_dir = tmp_path / "routes"
    config = config_from_yaml(cluster(routes_dir, WEB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    driver.start()
    blocker = routes_dir / "default_web_10.0.10.10.json"
    blocker.mkdir()  # the route's path is taken: every write fails
    status = driver.update(make_view(config, "n3"))
    assert status["sockets_ready"] is False and status["retrying"] == ["default/web 10.0.10.10"]
    driver.tick(1000.0)  # retry 1 of 2
    assert driver.status()["sockets_ready"] is False
    blocker.rmdir()
    driver.tick(2000.0)  # retry 2 succeeds
    assert driver.status()["sockets_ready"] is True and driver.announced() == {("default/web", "10.0.10.10")}
    assert [c.name for c in driver.host.calls].count("metalloid_example_retries_total") == 2
    driver.stop()
    blocker.mkdir()
    driver.start()
    driver.update(make_view(config, "n3"))
    driver.tick(1000.0)
    with pytest.raises(RuntimeError, match="gave up after 2 retries"):
        driver.tick(2000.0)


def test_start_fails_loudly_when_the_directory_is_a_file(tmp_path: Path, announcer_driver: DriverFactory) -> None:
    taken = tmp_path / "routes"
    taken.write_text("not a directory")
    config = config_from_yaml(cluster(taken, WEB), plugin=plugin)
    driver = announcer_driver(plugin, "example", node_name="n3", config=config)
    with pytest.raises(OSError):
        driver.start()
