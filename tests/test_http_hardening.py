"""The HTTP endpoint under abuse: caps, whole-request deadlines, quiet aborts, token, TLS, /status access.

Real sockets on loopback. The deadline is shortened for the tests
(monkeypatched), the rule under test is the same.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.serving import http
from supervisor.serving.http import Server, is_local, start_http_server
from supervisor.serving.metrics import MetricsRegistry
from supervisor.serving.options import STATUS_ANY, HttpOptionError, HttpOptions, read_token, tls_context

TOKEN = "0123456789abcdef0123456789abcdef"


def serve(status: Callable[[], dict[str, Any]] | None = None, *, options: HttpOptions | None = None) -> Server:
    return start_http_server(0, host="127.0.0.1", status=status or (lambda: {"node": "n1"}),
                             healthz=lambda: (True, "ok"), readyz=lambda: (True, "ok"),
                             metrics=MetricsRegistry(process_metrics=False), options=options)


@pytest.fixture
def server() -> Iterator[Server]:
    with serve() as running:
        yield running


def get(url: str, *, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None,
        source: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def idle_connection(server: Server, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=(source, 0))
    sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest: slowloris
    return sock


def raw_get(server: Server, path: str, source: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_slowloris_is_cut_at_the_whole_request_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "REQUEST_SECONDS", 1.0)
    with serve() as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        started = time.monotonic()
        closed_at = None
        # A byte every 0.3 s: each read is well inside any per-read timeout.
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 40:
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.3)
                if sock.recv(1) == b"":
                    closed_at = time.monotonic()
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_at = time.monotonic()
                break
        sock.close()
        assert closed_at is not None, "the trickling client was never cut"
        assert closed_at - started < 3.0


def test_connections_over_the_per_client_cap_get_an_immediate_503(server: Server) -> None:
    held = [idle_connection(server) for _ in range(http.MAX_PER_CLIENT)]
    try:
        time.sleep(0.2)
        answer = raw_get(server, "/healthz")
        assert answer.startswith(b"HTTP/1.0 503") and answer.endswith(b"busy\n")
        # Another client (another source address) is not affected.
        assert raw_get(server, "/healthz", source="127.0.0.2").startswith(b"HTTP/1.0 200")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert raw_get(server, "/healthz").startswith(b"HTTP/1.0 200")  # slots come back


def test_the_total_cap_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_CONNECTIONS", 4)
    with serve() as server:
        held = [idle_connection(server, source=f"127.0.0.{i}") for i in range(1, 5)]
        try:
            time.sleep(0.2)
            assert raw_get(server, "/healthz", source="127.0.0.9").startswith(b"HTTP/1.0 503")
        finally:
            for sock in held:
                sock.close()


def test_healthz_does_not_wait_behind_a_slow_status() -> None:
    release = threading.Event()

    def slow_status() -> dict[str, Any]:
        release.wait(5)
        return {"node": "n1"}

    with serve(slow_status) as server:
        pending = threading.Thread(target=get, args=(f"http://127.0.0.1:{server.port}/status",), daemon=True)
        pending.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert get(f"http://127.0.0.1:{server.port}/healthz") == (200, "ok\n")
        assert get(f"http://127.0.0.1:{server.port}/readyz") == (200, "ok\n")
        assert time.monotonic() - started < 1.0
        release.set()
        pending.join(timeout=5)


def test_aborted_clients_cost_one_quiet_line_not_tracebacks(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="supervisor.serving.http")
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        # SO_LINGER 0: close() sends a RST, the client vanished mid-answer.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.5)
    assert not [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
    loud = [r for r in caplog.records if r.levelno >= logging.INFO and r.getMessage().startswith("http.")]
    assert len(loud) <= 2, [r.getMessage() for r in loud]  # rate-limited, not one per reset
    assert get(f"http://127.0.0.1:{server.port}/healthz") == (200, "ok\n")


def test_the_token_guards_metrics_and_status_but_not_the_probes() -> None:
    with serve(options=HttpOptions(token=TOKEN)) as server:
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/metrics", "/status"):
            code, body = get(base + path)
            assert code == 401 and "Authorization: Bearer" in body
            assert get(base + path, headers={"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
            assert get(base + path, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(base + "/healthz") == (200, "ok\n")
        assert get(base + "/readyz") == (200, "ok\n")


def test_status_is_refused_to_remote_clients_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "is_local", lambda peer, local: False)  # as if from the LAN
    with serve() as server:
        code, body = get(f"http://127.0.0.1:{server.port}/status")
        assert code == 403 and "--status-access" in body
        assert get(f"http://127.0.0.1:{server.port}/metrics")[0] == 200
    with serve(options=HttpOptions(status_access=STATUS_ANY)) as server:
        assert get(f"http://127.0.0.1:{server.port}/status")[0] == 200


@pytest.mark.parametrize(("peer", "local", "expected"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.5", "10.0.0.1", True),
    ("::1", "::1", True),
    ("10.0.0.1", "10.0.0.1", True),  # this host, through its own LAN address
    ("::ffff:10.0.0.1", "10.0.0.1", True),
    ("10.0.0.2", "10.0.0.1", False),  # another host on the LAN
    ("fe80::2%eth0", "fe80::1%eth0", False),
    ("garbage", "10.0.0.1", False),
])
def test_who_counts_as_local(peer: str, local: str, expected: bool) -> None:
    assert is_local(peer, local) is expected


def test_tls_serves_https_and_a_plain_client_is_dropped_quietly(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt"), "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    import supervisor.serving.options as options

    context = tls_context(str(tmp_path), options.TLS_VERSIONS["VersionTLS13"])
    with serve(options=HttpOptions(tls=context)) as server:
        client = ssl.create_default_context(cafile=str(tmp_path / "tls.crt"))
        assert get(f"https://127.0.0.1:{server.port}/healthz", context=client) == (200, "ok\n")
        answer = raw_get(server, "/healthz")  # plain HTTP to the TLS port
        assert not answer.startswith(b"HTTP/1.0 200")
        assert get(f"https://127.0.0.1:{server.port}/healthz", context=client) == (200, "ok\n")
    assert not [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]


def test_a_missing_certificate_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(HttpOptionError, match=r"cannot load tls\.crt and tls\.key"):
        tls_context(str(tmp_path), "TLSv1_3")


@pytest.mark.parametrize(("content", "words"), [
    (b"short", "at least 16"),
    (b"has a space in the middle of it", "no spaces"),
    ("\u00e9".encode() * 20, "ASCII"),
])
def test_a_weak_or_odd_token_is_refused(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(HttpOptionError, match=words):
        read_token(str(path))


def test_a_token_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "token")
    with pytest.raises(HttpOptionError, match="FIFO"):
        read_token(str(tmp_path / "token"))


def test_token_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert read_token(str(path)) == TOKEN
