"""/healthz and /readyz never wait behind /status, and /status never waits behind the supervisor's loop.

A real HTTP server on loopback in front of an in-process `Supervisor` without
workers (nothing is spawned): the /status render is held in the middle, or
the loop's lock is held as while it routes a reload, and the other endpoints
must still answer. Behaviour only: no timing is asserted beyond "it answered
before the blocker was released".
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from supervisor.config.loading import load_config_files
from supervisor.messages import ConfigLoaded
from supervisor.serving.http import Server, start_http_server
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.rendering import Field, StatusRenderer
from supervisor.supervising.supervisor import Supervisor, SupervisorSettings
from tests.runtime_helpers import config_text, wait_for

# Generous: only a broken build waits this long (the blocked request is released at the end).
ANSWER_SECONDS = 10.0


class HeldRenderer(StatusRenderer):
    """Renders like the real one, after `release` is set; `entered` says a render has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def keep(self, fields: Sequence[Field]) -> dict[str, str]:
        self.entered.set()
        assert self.release.wait(ANSWER_SECONDS)
        return super().keep(fields)


@pytest.fixture
def node() -> Iterator[tuple[Supervisor, Server]]:
    metrics = MetricsRegistry(process_metrics=False)
    sup = Supervisor([], SupervisorSettings(node_name="n1"), metrics=metrics, clock=lambda: 100.0)
    with start_http_server(0, host="127.0.0.1", status=sup.status_json, healthz=sup.healthz, readyz=sup.readyz,
                           metrics=metrics) as server:
        yield sup, server


def get(server: Server, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=ANSWER_SECONDS) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_probes_answer_while_a_status_is_being_rendered(node: tuple[Supervisor, Server]) -> None:
    sup, server = node
    held = HeldRenderer()
    sup._renderer = held
    answers: list[tuple[int, bytes]] = []
    request = threading.Thread(target=lambda: answers.append(get(server, "/status")))
    request.start()
    try:
        assert held.entered.wait(ANSWER_SECONDS)
        assert get(server, "/healthz") == (200, b"ok\n")
        assert get(server, "/readyz")[0] == 503  # answered (no config yet), not held
        assert request.is_alive() and answers == []  # the /status is still in its render
    finally:
        held.release.set()
        request.join(ANSWER_SECONDS)
    [(code, body)] = answers
    assert code == 200 and json.loads(body)["node"] == "n1"


def test_status_and_probes_answer_while_the_loop_holds_its_lock(node: tuple[Supervisor, Server]) -> None:
    sup, server = node
    with sup.lock:  # as while the loop unpickles and routes a reload
        code, body = get(server, "/status")
        assert code == 200 and json.loads(body)["config"]["loaded"] is False
        assert get(server, "/healthz") == (200, b"ok\n")
        assert get(server, "/readyz")[0] == 503


def test_status_shows_what_the_loop_published_last(node: tuple[Supervisor, Server], tmp_path: Path) -> None:
    sup, server = node
    path = tmp_path / "c.yaml"
    path.write_text(config_text(3))
    config, diagnostics = load_config_files([str(path)])
    assert config is not None, diagnostics
    with sup.lock:
        assert sup.state.accept_config(ConfigLoaded(generation=1, config=config, origin=str(path), warnings=()))
        before = json.loads(get(server, "/status")[1])
        sup._publish_probes()  # the end of the loop's step
    after = json.loads(get(server, "/status")[1])
    assert (before["config"]["generation"], after["config"]["generation"]) == (0, 1)
    assert after == sup.status()  # the text served is the document


def test_status_answers_from_the_last_render_while_the_next_one_is_made(
        node: tuple[Supervisor, Server], tmp_path: Path) -> None:
    sup, server = node
    held = HeldRenderer()
    held.release.set()
    sup._renderer = held
    stop_rendering = sup.render_ahead()
    try:
        sup._publish_probes()
        assert sup._ahead is None  # nobody asked yet: no thread, no text kept
        code, body = get(server, "/status")  # the first request renders itself and starts the thread
        assert code == 200 and json.loads(body)["config"]["generation"] == 0
        wait_for(lambda: sup._rendered is not None, ANSWER_SECONDS, what="the thread's first render")
        # The next render is held in the middle, as a 1,000-Service render takes tens of ms.
        held.release.clear()
        held.entered.clear()
        path = tmp_path / "c.yaml"
        path.write_text(config_text(3))
        config, diagnostics = load_config_files([str(path)])
        assert config is not None, diagnostics
        with sup.lock:
            assert sup.state.accept_config(ConfigLoaded(generation=1, config=config, origin=str(path), warnings=()))
            sup._publish_probes()
        assert held.entered.wait(ANSWER_SECONDS)
        code, body = get(server, "/status")  # answered now, from the last complete render
        assert code == 200 and json.loads(body)["config"]["generation"] == 0
        assert json.loads(body)["workers"] == []
        assert get(server, "/healthz") == (200, b"ok\n")
        held.release.set()
        wait_for(lambda: json.loads(get(server, "/status")[1])["config"]["generation"] == 1, ANSWER_SECONDS,
                 what="the new config in /status")
        assert json.loads(get(server, "/status")[1]) == sup.status()
    finally:
        held.release.set()
        stop_rendering()
