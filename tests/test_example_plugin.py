"""The third-party example announcer, driven directly with a fake host (no processes).

The example is the complete plugin docs/plugins.md walks through; these tests
keep it honest: it is installed under the entry-point group, implements the
Announcer Protocol, registers through the hook, announces what the node wins,
withdraws the rest, and reports metrics and status through the host.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.announcing.api import Announcer, AnnouncerRegistry, AnnouncerView
from supervisor.config.loading import load_config_files
from supervisor.config.model import Config

metalloid_example_plugin = pytest.importorskip("metalloid_example_plugin")
ExampleAnnouncer = metalloid_example_plugin.ExampleAnnouncer

ROOT = Path(__file__).resolve().parent.parent
HOMELAB = str(ROOT / "examples" / "homelab.yaml")
INGRESS = "ingress-nginx/ingress-nginx-controller"


class FakeHost:
    """An AnnouncerHost that records what the plugin reports."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self.log = logging.getLogger("test.example")
        self.metrics: list[tuple[str, str, dict[str, str], float]] = []

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        self.metrics.append(("counter", name, dict(labels), value))

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self.metrics.append(("gauge", name, dict(labels), value))

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self.metrics.append(("observe", name, dict(labels), value))

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        self.metrics.append(("remove", name, dict(labels), 0.0))

    def announced(self) -> list[tuple[str, str, dict[str, str], float]]:
        return [m for m in self.metrics if m[1] == "metallb_speaker_announced"]


@pytest.fixture(scope="module")
def homelab() -> Config:
    config, diagnostics = load_config_files([HOMELAB])
    assert config is not None, diagnostics
    return config


def view_for(config: Config, node: str, members: frozenset[str] = frozenset({"n1", "n2", "n3"}),
             generation: int = 1) -> AnnouncerView:
    result = allocate(config)
    return AnnouncerView(node_name=node, mode="standalone", config=config,
                         assignments=tuple(result.assignments.values()), members=members, generation=generation)


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "announced.json"
    monkeypatch.setenv("METALLOID_EXAMPLE_OUT", str(path))
    return path


def test_the_entry_point_is_installed() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="metalloid.announcers")}
    assert names.get("example") == "metalloid_example_plugin"


def test_the_hook_registers_the_announcer_under_its_protocol() -> None:
    registry = AnnouncerRegistry()
    metalloid_example_plugin.metalloid_register_announcers(registry=registry)
    assert registry.names() == ("example",)
    assert isinstance(registry.get("example")(FakeHost("n1")), Announcer)  # type: ignore[misc]


def test_the_plugin_imports_only_the_public_api() -> None:
    source = Path(metalloid_example_plugin.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imported if m and m.startswith("supervisor")} == {"supervisor.api"}


def test_the_winner_announces_and_writes_the_file(homelab: Config, out: Path) -> None:
    # MetalLB's ranking for 10.0.10.10 among n1..n3 puts n3 first.
    host = FakeHost("n3")
    announcer = ExampleAnnouncer(host)
    announcer.start()
    announcer.update(view_for(homelab, "n3"))
    written = json.loads(out.read_text())
    assert written["node"] == "n3"
    assert [(a["service"], a["ip"]) for a in written["announcements"]] == [(INGRESS, "10.0.10.10")]
    assert host.announced() == [("gauge", "metallb_speaker_announced",
                                 {"service": INGRESS, "protocol": "example", "node": "n3", "ip": "10.0.10.10"}, 1)]
    assert announcer.status()["announcements"] == written["announcements"]


def test_a_loser_announces_nothing(homelab: Config, out: Path) -> None:
    host = FakeHost("n1")
    announcer = ExampleAnnouncer(host)
    announcer.start()
    announcer.update(view_for(homelab, "n1"))
    assert json.loads(out.read_text())["announcements"] == []
    assert host.announced() == []


def test_when_the_winner_dies_the_next_takes_over(homelab: Config, out: Path) -> None:
    host = FakeHost("n1")
    announcer = ExampleAnnouncer(host)
    announcer.start()
    announcer.update(view_for(homelab, "n1", members=frozenset({"n1", "n2"}), generation=2))
    assert [a["node"] for a in json.loads(out.read_text())["announcements"]] == ["n1"]


def test_losing_the_election_withdraws_and_removes_the_series(homelab: Config, out: Path) -> None:
    host = FakeHost("n3")
    announcer = ExampleAnnouncer(host)
    announcer.start()
    announcer.update(view_for(homelab, "n3"))
    announcer.update(view_for(homelab, "n3", members=frozenset({"n1", "n2"}), generation=2))
    assert json.loads(out.read_text())["announcements"] == []
    assert host.announced()[-1][0] == "remove"
    assert announcer.status()["generation"] == 2


def test_no_l2advertisement_means_nothing_announced(homelab: Config, out: Path) -> None:
    config = replace(homelab, l2_advertisements=())
    announcer = ExampleAnnouncer(FakeHost("n3"))
    announcer.start()
    announcer.update(view_for(config, "n3"))
    assert announcer.status()["announcements"] == []


def test_stop_withdraws_everything(homelab: Config, out: Path) -> None:
    host = FakeHost("n3")
    announcer = ExampleAnnouncer(host)
    announcer.start()
    announcer.update(view_for(homelab, "n3"))
    announcer.stop(handover=True)
    assert json.loads(out.read_text())["announcements"] == []
    assert host.announced()[-1] == ("remove", "metallb_speaker_announced",
                                    {"service": INGRESS, "protocol": "example", "node": "n3", "ip": "10.0.10.10"}, 0.0)


def test_every_update_counts(homelab: Config, out: Path) -> None:
    host = FakeHost("n2")
    announcer = ExampleAnnouncer(host)
    announcer.start()
    for generation in (1, 2, 3):
        announcer.update(view_for(homelab, "n2", generation=generation))
    assert [m for m in host.metrics if m[1] == "metalloid_example_updates_total"] == [
        ("counter", "metalloid_example_updates_total", {}, 1.0)] * 3
    assert announcer.status()["updates"] == 3


def test_start_fails_loudly_on_a_missing_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALLOID_EXAMPLE_OUT", str(tmp_path / "missing" / "out.json"))
    with pytest.raises(FileNotFoundError, match="METALLOID_EXAMPLE_OUT"):
        ExampleAnnouncer(FakeHost("n1")).start()


def test_without_an_output_file_it_only_logs(homelab: Config, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("METALLOID_EXAMPLE_OUT", raising=False)
    caplog.set_level(logging.INFO)
    announcer = ExampleAnnouncer(FakeHost("n3"))
    announcer.start()
    announcer.update(view_for(homelab, "n3"))
    assert "example.announce service=ingress-nginx/ingress-nginx-controller ip=10.0.10.10" in caplog.text


def test_docs_show_the_example_verbatim() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert Path(metalloid_example_plugin.__file__).read_text() in docs
    assert "pip install -e examples/thirdparty" in docs
    assert "--announcers layer2,example" in docs
