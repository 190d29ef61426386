"""/status text: exactly json.dumps(indent=2) of the document, re-rendered only when a source changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from supervisor.allocating.allocator import allocate
from supervisor.config.loading import load_config_files
from supervisor.messages import AllocationDone, ConfigLoaded
from supervisor.supervising.rendering import StatusRenderer
from supervisor.supervising.state import RoutedState
from supervisor.supervising.status import build_status, status_fields
from tests.runtime_helpers import config_text


def _state(tmp_path: Path, services: int) -> RoutedState:
    path = tmp_path / f"c{services}.yaml"
    path.write_text(config_text(services))
    config, diagnostics = load_config_files([str(path)])
    assert config is not None, diagnostics
    state = RoutedState(node_name="n1")
    assert state.accept_config(ConfigLoaded(generation=1, config=config, origin=str(path), warnings=()))
    assert state.accept_allocation(AllocationDone(generation=1, result=allocate(config, {})))
    state.statuses["announcer-x"] = {"announcements": [
        {"service": "default/svc-1", "ip": "10.20.0.1", "protocol": "x", "node": "n1", "reason": "won \u00e9 \"q\"\n"}],
        "elections": [{"service": "default/svc-1", "winner": "n1"}]}
    return state


def _text(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, default=str) + "\n").encode()


def test_the_rendered_text_is_json_dumps_of_the_document(tmp_path: Path) -> None:
    state = _state(tmp_path, 20)
    protocols = {"announcer-x": "x"}
    fields = status_fields(state, [], now=5.0, version="v", protocols=protocols)
    document = build_status(state, [], now=5.0, version="v", protocols=protocols)
    assert StatusRenderer().render(fields) == _text(document)
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
    assert text == _text(build_status(bigger, [], now=3.0, version="v", protocols=protocols))
    assert len(json.loads(text)["services"]) == 4
