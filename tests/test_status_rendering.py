"""/status text: parses to exactly the document, one line per Service, re-rendered only when a source changed."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.config.loading import load_config_files
from supervisor.messages import AllocationDone, ConfigLoaded
from supervisor.supervising.rendering import StatusRenderer, plain, render_value
from supervisor.supervising.state import RoutedState
from supervisor.supervising.status import build_status, status_fields
from tests.runtime_helpers import config_text


def _reload(state: RoutedState, path: Path, text: str, *, generation: int) -> None:
    """Write `text` as the config file, load it and allocate it (keeping the IPs already assigned) into `state`."""
    path.write_text(text)
    config, diagnostics = load_config_files([str(path)])
    assert config is not None, diagnostics
    allocation = state.allocation
    previous = {key: a.ips for key, a in allocation.result.assignments.items()} if allocation is not None else {}
    assert state.accept_config(ConfigLoaded(generation=generation, config=config, origin=str(path), warnings=()))
    assert state.accept_allocation(AllocationDone(generation=generation, result=allocate(config, previous)))


def _state(tmp_path: Path, services: int) -> RoutedState:
    state = RoutedState(node_name="n1")
    _reload(state, tmp_path / f"c{services}.yaml", config_text(services), generation=1)
    state.statuses["announcer-x"] = {"announcements": [
        {"service": "default/svc-1", "ip": "10.20.0.1", "protocol": "x", "node": "n1", "reason": "won \u00e9 \"q\"\n"}],
        "elections": [{"service": "default/svc-1", "winner": "n1"}]}
    return state


def _parsed(document: dict[str, Any]) -> Any:
    """The document as a JSON client reads it (`default=str`, as the renderer writes what JSON lacks)."""
    return json.loads(json.dumps(document, default=str))


def test_the_rendered_text_is_the_document(tmp_path: Path) -> None:
    state = _state(tmp_path, 20)
    protocols = {"announcer-x": "x"}
    fields = status_fields(state, [], now=5.0, version="v", protocols=protocols)
    document = build_status(state, [], now=5.0, version="v", protocols=protocols)
    text = StatusRenderer().render(fields)
    assert json.loads(text) == _parsed(document)
    lines = text.decode().splitlines()
    # Readable with less or grep: indented like json.dumps(indent=2) at the top, one line per Service.
    assert lines[:3] == ["{", '  "node": "n1",', '  "mode": "standalone",']
    assert sum(line.startswith('    {"namespace": "default", "name": "svc-') for line in lines) == 20
    assert '      "announcements": [' in lines  # a plugin payload's lists are indented too
    assert document["services"][1]["announced"] == {"x": ["n1"]}
    assert document["services"][1]["elections"] == {"x": {"service": "default/svc-1", "winner": "n1"}}


def test_unchanged_sources_reuse_the_text_and_a_new_allocation_is_rendered_again(tmp_path: Path) -> None:
    state = _state(tmp_path, 3)
    renderer = StatusRenderer()
    calls: list[str] = []
    protocols = {"announcer-x": "x"}

    def counted(fields: list[Any]) -> list[Any]:
        return [(name, sources, (lambda n=name, c=compute: (calls.append(n), c())[1])) for name, sources, compute
                in fields]

    first = renderer.render(counted(status_fields(state, [], now=1.0, version="v", protocols=protocols)))
    assert "services" in calls
    calls.clear()
    again = renderer.render(counted(status_fields(state, [], now=2.0, version="v", protocols=protocols)))
    assert again == first
    assert "services" not in calls and "workers" in calls  # live fields every time, the rest kept

    bigger = _state(tmp_path, 4)
    calls.clear()
    text = renderer.render(counted(status_fields(bigger, [], now=3.0, version="v", protocols=protocols)))
    assert "services" in calls
    assert json.loads(text) == _parsed(build_status(bigger, [], now=3.0, version="v", protocols=protocols))
    assert len(json.loads(text)["services"]) == 4
    # What was kept and what was rendered again make the same text as a fresh render.
    assert text == StatusRenderer().render(status_fields(bigger, [], now=3.0, version="v", protocols=protocols))


def test_an_announcer_report_re_renders_only_the_fields_built_from_reports(tmp_path: Path) -> None:
    state = _state(tmp_path, 3)
    renderer = StatusRenderer()
    protocols = {"announcer-x": "x"}
    renderer.render(status_fields(state, [], now=1.0, version="v", protocols=protocols))
    calls: list[str] = []
    state.statuses["announcer-x"] = {"announcements": [], "elections": []}
    fields = [(name, sources, (lambda n=name, c=compute: (calls.append(n), c())[1]))
              for name, sources, compute in status_fields(state, [], now=2.0, version="v", protocols=protocols)]
    text = renderer.render(fields)
    assert {"services", "announcements", "plugins", "plugin_errors"} <= set(calls)
    assert not {"config", "pools", "members"} & set(calls)  # kept: they are not built from reports
    assert json.loads(text) == _parsed(build_status(state, [], now=2.0, version="v", protocols=protocols))
    assert json.loads(text)["services"][1]["announced"] == {}


@pytest.mark.parametrize("value", [
    {}, [], {"a": []}, {"a": {"b": {"c": {"d": [1, {"e": None}]}}}}, [{"x": 1.5}, "é\n\"q\"", None, True],
    {1: "int key", "2": "str key"}, {"k": ("tuple", 3)}, {"addr": ipaddress.ip_address("10.0.0.1")},
], ids=["empty-dict", "empty-list", "nested-empty", "deep", "mixed-list", "int-keys", "tuple", "not-json"])
def test_any_value_renders_to_what_json_reads(value: Any) -> None:
    assert json.loads(render_value(value, 1)) == json.loads(json.dumps(value, default=str))


def test_kept_texts_of_an_earlier_render_with_live_fields_of_now(tmp_path: Path) -> None:
    # What a request assembles while the render-ahead thread works on the next change:
    # the kept fields as last rendered, the live ones (workers, uptimes) from the request's snapshot.
    from supervisor.supervising.lifecycle import WorkerState
    from supervisor.supervising.rendering import assemble

    state = _state(tmp_path, 3)
    protocols = {"announcer-x": "x"}
    texts = StatusRenderer().keep(status_fields(state, [], now=5.0, version="v", protocols=protocols))
    assert "workers" not in texts and "services" in texts
    worker = WorkerState(name="allocator", start_seconds=0.3)
    later = RoutedState(node_name="n1")  # nothing loaded: what a newer publish would show if texts were redone
    document = json.loads(assemble(status_fields(later, [worker], now=9.0, version="v", protocols=protocols), texts))
    expected = _parsed(build_status(state, [worker], now=9.0, version="v", protocols=protocols))
    assert document == expected
    assert [w["name"] for w in document["workers"]] == ["allocator"]
    assert len(document["services"]) == 3


def test_a_field_that_fails_is_not_computed_again_until_a_source_changes() -> None:
    # The render-ahead thread calls keep() at every publish of the loop (20 a second): a payload
    # that breaks a computation must cost one attempt per change of its sources, not one per turn.
    calls: list[object] = []

    def broken(source: object) -> Any:
        calls.append(source)
        raise ValueError(f"bad payload {source}")

    renderer = StatusRenderer()
    first, second = object(), object()
    for _ in range(3):
        with pytest.raises(ValueError, match="bad payload"):
            renderer.keep([("plugins", (first,), lambda: broken(first))])
    assert calls == [first]
    with pytest.raises(ValueError):
        renderer.keep([("plugins", (second,), lambda: broken(second))])
    assert calls == [first, second]
    fixed = renderer.keep([("plugins", (second, 1), lambda: {"ok": True})])
    assert fixed == {"plugins": '  "plugins": {\n    "ok": true\n  }'}


def test_a_reload_builds_and_renders_only_the_services_whose_sources_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reload adds one Service to 1,000; rebuilding and re-encoding every row after each allocation
    # and announcer report was half of a render's CPU, in the supervisor that serves /status.
    from supervisor.supervising import status

    built: list[str] = []
    service = status._service

    def counted(result: Any, key: Any, announced: Any, elections: Any) -> dict[str, Any]:
        built.append(str(key))
        return service(result, key, announced, elections)

    monkeypatch.setattr(status, "_service", counted)
    protocols = {"announcer-x": "x"}
    state = _state(tmp_path, 5)
    renderer = StatusRenderer()
    renderer.render(status_fields(state, [], now=1.0, version="v", protocols=protocols))
    assert len(built) == 5

    # The same Services allocated again (new objects, equal values) and one more: only the new one is built.
    _reload(state, tmp_path / "c6.yaml", config_text(6), generation=2)
    built.clear()
    text = renderer.render(status_fields(state, [], now=2.0, version="v", protocols=protocols))
    assert built == ["default/svc-5"]
    assert text == StatusRenderer().render(status_fields(state, [], now=2.0, version="v", protocols=protocols))

    # An announcer's report that changes one Service's election: that row alone, and the text is a fresh render's.
    state.statuses["announcer-x"] = {"announcements": [
        {"service": "default/svc-1", "ip": "10.20.0.1", "protocol": "x", "node": "n1", "reason": "won \u00e9 \"q\"\n"}],
        "elections": [{"service": "default/svc-1", "winner": "n2"}]}
    built.clear()
    text = renderer.render(status_fields(state, [], now=3.0, version="v", protocols=protocols))
    assert built == ["default/svc-1"]
    document = json.loads(text)
    assert document["services"][1]["elections"] == {"x": {"service": "default/svc-1", "winner": "n2"}}
    assert document == _parsed(build_status(state, [], now=3.0, version="v", protocols=protocols))
    assert text == StatusRenderer().render(status_fields(state, [], now=3.0, version="v", protocols=protocols))

    # Services removed: the rows that remain are taken from where they stood and none is built.
    _reload(state, tmp_path / "c3.yaml", config_text(0, names=["svc-0", "svc-3", "svc-5"]), generation=3)
    built.clear()
    text = renderer.render(status_fields(state, [], now=4.0, version="v", protocols=protocols))
    assert built == []
    assert [s["name"] for s in json.loads(text)["services"]] == ["svc-0", "svc-3", "svc-5"]
    assert text == StatusRenderer().render(status_fields(state, [], now=4.0, version="v", protocols=protocols))
    # The rows' layout is the one every other list of the document has.
    as_lists = [(name, sources, (lambda c=compute: plain(c()))) for name, sources, compute
                in status_fields(state, [], now=4.0, version="v", protocols=protocols)]
    assert text == StatusRenderer().render(as_lists)
