"""The node's HTTP endpoint: /metrics, /healthz, /readyz and /status on --metrics-port.

A stdlib `ThreadingHTTPServer` in a daemon thread of the supervisor: it only
reads (the metrics registry and callables the supervisor passes in), so a slow
scraper never blocks the supervisor's loop, and nothing here knows about
workers or queues. /healthz and /readyz answer with the truth the supervisor
computes (200 "ok", or 503 and the reason), unlike MetalLB's plain pings.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from supervisor.serving.metrics import MetricsRegistry

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]


class PortInUseError(OSError):
    """The metrics port is taken (another metalloid, or MetalLB's speaker on 7472)."""


class Server:
    """A running HTTP server; `.port` is the bound port, `.close()` stops it."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def start_http_server(
    port: int,
    *,
    host: str = "0.0.0.0",
    status: Callable[[], dict[str, Any]],
    healthz: Check,
    readyz: Check,
    metrics: MetricsRegistry,
) -> Server:
    """Bind `host:port` (0 picks a free port) and serve in a daemon thread.

    Raises `PortInUseError` naming the port and the fix when it is taken.
    """
    handler = _handler_class(status=status, healthz=healthz, readyz=readyz, metrics=metrics)
    server_class = _V6Server if ":" in host else _Server
    try:
        httpd = server_class((host, port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            error = PortInUseError(
                f"metrics port {port} is in use on {host}; stop what holds it or pass --metrics-port"
            )
            error.errno = exc.errno
            raise error from exc
        raise
    # A short poll interval makes close() (and so a SIGTERM exit) take ~0.1 s, not 0.5 s.
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True)
    thread.start()
    server = Server(httpd, thread)
    log.info("http.listening host=%s port=%d", server.host, server.port)
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _V6Server(_Server):
    address_family = socket.AF_INET6


def _handler_class(
    *, status: Callable[[], dict[str, Any]], healthz: Check, readyz: Check, metrics: MetricsRegistry
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "metalloid"
        # A stuck client must not hold a thread forever.
        timeout = 10

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                match path:
                    case "/metrics":
                        body, content_type = metrics.render()
                        self._send(200, body, content_type)
                    case "/healthz":
                        self._check(healthz)
                    case "/readyz":
                        self._check(readyz)
                    case "/status":
                        text = json.dumps(status(), indent=2, sort_keys=False, default=str) + "\n"
                        self._send(200, text.encode(), "application/json")
                    case _:
                        self._send(404, b"not found: try /metrics, /healthz, /readyz or /status\n")
            except Exception as exc:  # the endpoint must survive a bug in a callable
                log.exception("http.error path=%s", path)
                self._send(500, f"internal error: {exc}\n".encode())

        def _check(self, check: Check) -> None:
            ok, reason = check()
            if ok:
                self._send(200, b"ok\n")
            else:
                self._send(503, f"{reason or 'not ok'}\n".encode())

        def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http.request client=%s line=%s", self.address_string(), format % args)

    return Handler
