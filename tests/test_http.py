"""The HTTP endpoint: real sockets on a free port, real urllib requests."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from supervisor.messages import MetricKind, MetricOp, MetricUpdate
from supervisor.serving.http import PortInUseError, Server, start_http_server
from supervisor.serving.metrics import MetricsRegistry


class Truth:
    """What the supervisor would report; tests flip it."""

    def __init__(self) -> None:
        self.healthy: tuple[bool, str] = (True, "")
        self.ready: tuple[bool, str] = (False, "no config loaded yet")
        self.status: dict[str, Any] = {"node": "n1", "mode": "standalone"}


@pytest.fixture
def truth() -> Truth:
    return Truth()


@pytest.fixture
def metrics() -> MetricsRegistry:
    return MetricsRegistry(process_metrics=False)


@pytest.fixture
def server(truth: Truth, metrics: MetricsRegistry) -> Iterator[Server]:
    with start_http_server(
        0, host="127.0.0.1", status=lambda: truth.status, healthz=lambda: truth.healthy,
        readyz=lambda: truth.ready, metrics=metrics,
    ) as running:
        yield running


def get(server: Server, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_port_zero_binds_a_free_port(server: Server) -> None:
    assert server.port > 0


def test_metrics_serves_the_registry(server: Server, metrics: MetricsRegistry) -> None:
    metrics.apply(MetricUpdate(name="metallb_allocator_addresses_total", kind=MetricKind.GAUGE, documentation="",
                               labels=(("pool", "first-pool"),), op=MetricOp.SET, value=90))
    code, content_type, body = get(server, "/metrics")
    assert code == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'metallb_allocator_addresses_total{pool="first-pool"} 90\n' in body


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_checks_tell_the_truth(server: Server, truth: Truth, path: str) -> None:
    truth.healthy = truth.ready = (True, "")
    assert get(server, path)[0::2] == (200, "ok\n")
    truth.healthy = truth.ready = (False, "worker allocator is in backoff")
    assert get(server, path)[0::2] == (503, "worker allocator is in backoff\n")


def test_status_is_json(server: Server, truth: Truth) -> None:
    truth.status = {"node": "n1", "pools": [{"name": "first-pool", "total_v4": 90}]}
    code, content_type, body = get(server, "/status")
    assert (code, content_type) == (200, "application/json")
    assert json.loads(body) == truth.status


def test_unknown_path_is_404(server: Server) -> None:
    code, _, body = get(server, "/nope")
    assert code == 404
    assert "/metrics" in body


def test_a_failing_callable_is_a_500_and_the_server_lives_on() -> None:
    def boom() -> dict[str, Any]:
        raise RuntimeError("status exploded")

    with start_http_server(0, host="127.0.0.1", status=boom, healthz=lambda: (True, ""),
                           readyz=lambda: (True, ""), metrics=MetricsRegistry(process_metrics=False)) as other:
        code, _, body = get(other, "/status")
        assert code == 500
        assert "status exploded" in body
        assert get(other, "/healthz")[0] == 200


def test_a_taken_port_is_a_clear_error(metrics: MetricsRegistry) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(PortInUseError, match=f"metrics port {port} is in use.*--metrics-port"):
            start_http_server(port, host="127.0.0.1", status=dict, healthz=lambda: (True, ""),
                              readyz=lambda: (True, ""), metrics=metrics)
    finally:
        holder.close()


def test_close_frees_the_port(truth: Truth, metrics: MetricsRegistry) -> None:
    first = start_http_server(0, host="127.0.0.1", status=lambda: truth.status, healthz=lambda: truth.healthy,
                              readyz=lambda: truth.ready, metrics=metrics)
    port = first.port
    first.close()
    again = start_http_server(port, host="127.0.0.1", status=lambda: truth.status, healthz=lambda: truth.healthy,
                              readyz=lambda: truth.ready, metrics=metrics)
    again.close()
