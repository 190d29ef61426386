"""The node's HTTP endpoint: /metrics, /healthz, /readyz and /status on --metrics-port.

A stdlib `ThreadingHTTPServer` in a daemon thread of the supervisor: it only
reads (the metrics registry and callables the supervisor passes in), so a slow
scraper never blocks the supervisor's loop, and nothing here knows about
workers or queues. /healthz and /readyz answer with the truth the supervisor
computes (200 "ok", or 503 and the reason), unlike MetalLB's plain pings.

The endpoint faces the LAN (the speaker is hostNetwork), so it is bounded:
- at most MAX_CONNECTIONS connections at once, MAX_PER_CLIENT from one
  address, and LOCAL_RESERVE of them kept for clients on this host (the
  kubelet's probes of a hostNetwork pod, `metalloid status`): a flood from
  the LAN cannot starve the probes. A connection over a limit gets an
  immediate 503 and is closed, nothing is queued;
- every connection has one deadline for everything (TLS handshake, request,
  response), REQUEST_SECONDS, enforced by one reaper thread that shuts the
  socket down: a client trickling a byte a second (slowloris) holds a slot
  for REQUEST_SECONDS, not forever;
- one /status is built at a time, from references the supervisor's loop
  published on its last turn (no lock shared with the loop) and the text a
  thread of the supervisor re-renders whenever they change
  (`supervising/rendering.py`, `probing.render_ahead`), so a /status only
  assembles kept text and never waits for a render; /healthz and /readyz
  take no lock at all;
- a client that resets or times out costs one log line, rate-limited, never
  a traceback.
Access rules (`options`): /status only for local clients unless
--status-access any; a bearer token for /metrics and /status when
--auth-token-file is set; TLS when --metrics-cert-dir is set.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from supervisor.serving.metrics import MetricsRegistry
from supervisor.serving.options import STATUS_LOCAL, HttpOptions

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, str]]

# Prometheus, a few `metalloid status`, the kubelet: a handful at a time.
# 64 threads of a few hundred KiB of stack each stay well inside the pod's
# memory request.
MAX_CONNECTIONS = 64
MAX_PER_CLIENT = 8
LOCAL_RESERVE = 8
# A /metrics or /status answer is written in milliseconds; 10 s is the
# kubelet's longest sensible probe timeout and Prometheus's default scrape
# timeout, so no legitimate client is cut.
REQUEST_SECONDS = 10.0
# One line per kind of client trouble per this many seconds, with a count.
QUIET_SECONDS = 10.0
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n" \
        b"Connection: close\r\n\r\nbusy\n"


class PortInUseError(OSError):
    """The metrics port is taken (another metalloid, or MetalLB's speaker on 7472)."""


class Server:
    """A running HTTP server; `.port` is the bound port, `.close()` stops it."""

    def __init__(self, httpd: _Server, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = str(httpd.server_address[0])
        self.port = int(httpd.server_address[1])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.reaper.stop()
        self._thread.join(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def start_http_server(
    port: int,
    *,
    host: str = "0.0.0.0",
    status: Callable[[], dict[str, Any] | bytes],
    healthz: Check,
    readyz: Check,
    metrics: MetricsRegistry,
    options: HttpOptions | None = None,
) -> Server:
    """Bind `host:port` (0 picks a free port) and serve in a daemon thread.

    Raises `PortInUseError` naming the port and the fix when it is taken.
    `options` carries the access rules (its host and port are ignored here).
    """
    options = options or HttpOptions()
    handler = _handler_class(status=status, healthz=healthz, readyz=readyz, metrics=metrics, options=options)
    server_class = _V6Server if ":" in host else _Server
    try:
        httpd = server_class((host, port), handler, tls=options.tls)
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
    log.info("http.listening host=%s port=%d tls=%s token=%s status_access=%s", server.host, server.port,
             options.tls is not None, options.token is not None, options.status_access)
    return server


def is_local(peer: str, local: str) -> bool:
    """A client on this host: loopback, or its source is the very address it connected to.

    The kernel only uses one of our own addresses as a source for a
    connection from this host; a spoofed one from the LAN cannot complete
    the TCP handshake (our answer goes to ourselves).
    """
    try:
        peer_ip, local_ip = _plain(peer), _plain(local)
    except ValueError:
        return False
    return peer_ip.is_loopback or peer_ip == local_ip


def _plain(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class _Quiet:
    """Rate-limited one-line logging of client trouble (resets, timeouts, refusals)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, kind: str, client: str, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -QUIET_SECONDS) < QUIET_SECONDS:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            suppressed = self._suppressed.pop(kind, 0)
        log.info("http.%s client=%s detail=%s similar_since_last=%d", kind, client, detail, suppressed)


class _Reaper:
    """Shuts down every connection that outlives its deadline (one thread for all of them)."""

    def __init__(self, quiet: _Quiet) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._quiet = quiet
        self._thread = threading.Thread(target=self._run, name="http-reaper", daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket, client: str) -> None:
        with self._lock:
            self._deadlines[sock] = (time.monotonic() + REQUEST_SECONDS, client)

    def remove(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                overdue = [(s, c) for s, (d, c) in self._deadlines.items() if d <= now]
                for sock, _ in overdue:
                    del self._deadlines[sock]
            for sock, client in overdue:
                self._quiet("deadline", client, f"request not done in {REQUEST_SECONDS:g}s, closed")
                try:
                    # The plain socket's shutdown, not SSLSocket's: the handler
                    # thread may be inside the TLS object; this only makes its
                    # blocked read or write return.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 tls: ssl.SSLContext | None) -> None:
        super().__init__(address, handler)
        self.tls = tls
        self.quiet = _Quiet()
        self.reaper = _Reaper(self.quiet)
        self._count_lock = threading.Lock()
        self._total = 0
        self._per_client: dict[str, int] = {}

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake happens in the handler's thread, under its deadline,
            # never in this accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        local = _is_local_socket(request, client)
        with self._count_lock:
            limit = MAX_CONNECTIONS if local else MAX_CONNECTIONS - LOCAL_RESERVE
            if self._total >= limit or self._per_client.get(client, 0) >= MAX_PER_CLIENT:
                admitted = False
            else:
                admitted = True
                self._total += 1
                self._per_client[client] = self._per_client.get(client, 0) + 1
        if not admitted:
            self.quiet("refused", client, f"over {MAX_PER_CLIENT} per client or {MAX_CONNECTIONS} in all")
            self._refuse(request)
            return
        self.reaper.add(request, client)
        try:
            super().process_request(request, client_address)
        except BaseException:
            # No thread could start (at the thread or memory limit): undo.
            self._release(request, client)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request, str(client_address[0]))

    def _release(self, request: Any, client: str) -> None:
        self.reaper.remove(request)
        with self._count_lock:
            self._total -= 1
            left = self._per_client.get(client, 1) - 1
            if left:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)

    def _refuse(self, request: Any) -> None:
        try:
            if self.tls is None:
                request.setblocking(False)
                request.send(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        client = str(client_address[0]) if client_address else "?"
        if isinstance(exc, (OSError, ssl.SSLError, ValueError)):
            # Resets, timeouts, a reaped deadline, a TLS client speaking HTTP:
            # the client's business, one quiet line.
            self.quiet("client-aborted", client, f"{type(exc).__name__}: {exc}")
        else:
            log.error("http.handler-failed client=%s error=%s: %s", client, type(exc).__name__, exc)
            log.debug("http.handler-failed traceback", exc_info=True)


class _V6Server(_Server):
    address_family = socket.AF_INET6


def _is_local_socket(request: Any, client: str) -> bool:
    try:
        return is_local(client, str(request.getsockname()[0]))
    except OSError:
        return False


def _handler_class(
    *, status: Callable[[], dict[str, Any] | bytes], healthz: Check, readyz: Check, metrics: MetricsRegistry,
    options: HttpOptions,
) -> type[BaseHTTPRequestHandler]:
    status_lock = threading.Lock()
    expected = f"Bearer {options.token}".encode() if options.token else None

    class Handler(BaseHTTPRequestHandler):
        server_version = "metalloid"
        # Per read; the whole-connection deadline is the reaper's.
        timeout = REQUEST_SECONDS

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            try:
                body = self._answer(path)
            except Exception as exc:  # the endpoint must survive a bug in a callable
                log.error("http.error path=%s error=%s: %s", path, type(exc).__name__, exc)
                log.debug("http.error traceback", exc_info=True)
                body = (500, f"internal error: {exc}\n".encode(), "text/plain; charset=utf-8", {})
            # Writing is the client's side of things: a reset here is handle_error's quiet line.
            self._send(*body)

        def _answer(self, path: str) -> tuple[int, bytes, str, dict[str, str]]:
            text = "text/plain; charset=utf-8"
            match path:
                case "/healthz":
                    return self._check(healthz)
                case "/readyz":
                    return self._check(readyz)
                case "/metrics" | "/status":
                    refusal = self._refusal(path)
                    if refusal is not None:
                        return refusal
                    if path == "/metrics":
                        body, content_type = metrics.render()
                        return 200, body, content_type, {}
                    if not status_lock.acquire(timeout=REQUEST_SECONDS / 2):
                        return 503, b"busy: another /status is being built, retry\n", text, {}
                    try:
                        document = status()
                    finally:
                        status_lock.release()
                    if isinstance(document, bytes):  # already rendered (the supervisor's StatusRenderer)
                        return 200, document, "application/json", {}
                    rendered = json.dumps(document, indent=2, sort_keys=False, default=str) + "\n"
                    return 200, rendered.encode(), "application/json", {}
                case _:
                    return 404, b"not found: try /metrics, /healthz, /readyz or /status\n", text, {}

        def _refusal(self, path: str) -> tuple[int, bytes, str, dict[str, str]] | None:
            text = "text/plain; charset=utf-8"
            if expected is not None:
                given = self.headers.get("Authorization", "").encode("latin-1", "replace")
                if not hmac.compare_digest(given, expected):
                    return (401, f"{path} needs 'Authorization: Bearer <token>' (--auth-token-file)\n".encode(),
                            text, {"WWW-Authenticate": 'Bearer realm="metalloid"'})
            if path == "/status" and options.status_access == STATUS_LOCAL and not is_local(
                    str(self.client_address[0]), str(self.connection.getsockname()[0])):
                return (403, b"/status is served to this host only (--status-access local): run `metalloid "
                             b"status` on the node, or start metalloid with --status-access any "
                             b"(and --auth-token-file)\n", text, {})
            return None

        def _check(self, check: Check) -> tuple[int, bytes, str, dict[str, str]]:
            ok, reason = check()
            text = "text/plain; charset=utf-8"
            return (200, b"ok\n", text, {}) if ok else (503, f"{reason or 'not ok'}\n".encode(), text, {})

        def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http.request client=%s line=%s", self.address_string(), format % args)

    return Handler
