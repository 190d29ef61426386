"""A raw-JSON Kubernetes client: plain HTTP(S) from the standard library, dicts in and out.

The official `kubernetes` package costs ~22 MiB PSS per process just to
import (its package `__init__` loads every API class, the config loaders,
`dynamic`, `leaderelection`; BENCHMARKS.md, 2026-12-06), and its typed models
~23 MiB more and a pydantic round trip per object (FACTS.md); metalloid only
needs dicts. So the two ways a metalloid pod or a test reaches the API are
spoken with `http.client` and `ssl`:

- in a pod (no kubeconfig, `KUBERNETES_SERVICE_HOST` set): the service
  account's CA and token, the token file read again every minute (the kubelet
  rotates bound tokens, as the official client re-reads it too);
- `host` (`--api-server`, `kubectl proxy`, the tests' fake API server): plain
  HTTP, no credentials.

A kubeconfig (a developer's machine, `metalloid preflight`) can hold any
authentication (exec plugins, auth providers, client certificates), so it
still goes through the official client's loader and connection pool; only
those processes import it.

`request` makes one call, `watch` reads a chunked watch stream. Errors come
back as `ApiError` with the HTTP code (0: the server could not be reached).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The official client re-reads the token file once a minute; rotated tokens stay valid longer than that.
TOKEN_REREAD_SECONDS = 60.0

Timeout = float | tuple[float, float] | None


class ApiError(Exception):
    """A non-2xx answer (or a transport failure, `code` 0)."""

    def __init__(self, code: int, reason: str, message: str = "") -> None:
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")
        self.code, self.reason, self.message = code, reason, message


class Response(Protocol):
    """One answer of either transport: read whole, or line by line (a watch)."""

    status: int
    reason: str

    def read(self) -> bytes: ...

    def lines(self) -> Iterator[bytes]: ...

    def shutdown(self) -> None:
        """Make a blocked read in another thread return (stopping a watch)."""

    def close(self) -> None: ...


class Transport(Protocol):
    def open(self, method: str, path: str, *, query: Mapping[str, str | int] | None, headers: dict[str, str],
             body: Any, timeout: Timeout, stream: bool) -> Response:
        """Send `body` (JSON-ready, or None) and return the answer once its headers arrived."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the API server is and how to authenticate: an `https://` or `http://` URL, a CA, a token."""

    url: str
    ca_file: str | None = None
    token_file: str | None = None


def in_cluster_endpoint(environ: Mapping[str, str] = os.environ, root: Path = SERVICE_ACCOUNT) -> Endpoint:
    """The pod's own API server, as the official client's `load_incluster_config` finds it."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ApiError(0, "Unconfigured", "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    for name in ("token", "ca.crt"):
        if not (root / name).is_file():
            raise ApiError(0, "Unconfigured", f"the service account's {root / name} is missing; mount the "
                                              "service account token (automountServiceAccountToken)")
    return Endpoint(url=f"https://{host}:{port}", ca_file=str(root / "ca.crt"), token_file=str(root / "token"))


class _HttpResponse:
    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, *,
                 keep: Callable[[http.client.HTTPConnection], None] | None,
                 drop: Callable[[http.client.HTTPConnection], None]) -> None:
        self._conn, self._response, self._keep, self._drop = conn, response, keep, drop
        self.status, self.reason = response.status, response.reason
        self.closed = False

    def read(self) -> bytes:
        try:
            return self._response.read()
        finally:
            self.close()

    def lines(self) -> Iterator[bytes]:
        while True:
            line = self._response.readline()
            if not line:
                return
            yield line

    def shutdown(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._keep is not None and not self._response.will_close and self._response.isclosed():
            self._keep(self._conn)  # read to the end: the connection serves the next request
        else:
            self._drop(self._conn)


class StdlibTransport:
    """HTTP/1.1 to one endpoint: a kept-alive connection per thread for calls, a fresh one per watch."""

    def __init__(self, endpoint: Endpoint, *, user_agent: str | None = None) -> None:
        parts = urllib.parse.urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ApiError(0, "Unconfigured", f"API server URL {endpoint.url!r} is not http(s)://HOST[:PORT]")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._context = ssl.create_default_context(cafile=endpoint.ca_file) if self._https else None
        self._token_file = endpoint.token_file
        self._token: tuple[float, str] | None = None
        self._user_agent = user_agent or "metalloid"
        self._idle = threading.local()
        self._lock = threading.Lock()
        self._open_conns: set[http.client.HTTPConnection] = set()

    def _bearer(self) -> str | None:
        if self._token_file is None:
            return None
        now = time.monotonic()
        if self._token is None or now - self._token[0] > TOKEN_REREAD_SECONDS:
            self._token = (now, Path(self._token_file).read_text().strip())
        return self._token[1]

    def _connect(self, timeout: Timeout) -> http.client.HTTPConnection:
        connect_timeout = timeout[0] if isinstance(timeout, tuple) else timeout
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=connect_timeout, context=self._context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=connect_timeout)
        with self._lock:
            self._open_conns.add(conn)
        return conn

    def _release(self, conn: http.client.HTTPConnection) -> None:
        old = getattr(self._idle, "conn", None)
        if old is not None and old is not conn:
            self._drop(old)
        self._idle.conn = conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open_conns.discard(conn)

    def open(self, method: str, path: str, *, query: Mapping[str, str | int] | None, headers: dict[str, str],
             body: Any, timeout: Timeout, stream: bool) -> Response:
        data = None if body is None else json.dumps(body).encode()
        target = self._prefix + path + (f"?{urllib.parse.urlencode(list(query.items()))}" if query else "")
        headers = {**headers, "User-Agent": self._user_agent}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        # A kept connection the server closed meanwhile fails on first use: one retry on a fresh one.
        for attempt in (0, 1):
            reused = None if stream else getattr(self._idle, "conn", None)
            if reused is not None:
                self._idle.conn = None
            conn = reused or self._connect(timeout)
            try:
                conn.request(method, target, body=data, headers=headers)
                if conn.sock is not None:
                    conn.sock.settimeout(read_timeout)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(conn)
                if reused is None or attempt:
                    raise
                continue
            except BaseException:
                self._drop(conn)
                raise
            return _HttpResponse(conn, response, keep=None if stream else self._release, drop=self._drop)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            conns, self._open_conns = list(self._open_conns), set()
        for conn in conns:
            conn.close()


class _OfficialResponse:
    def __init__(self, response: Any) -> None:
        self._response, self._raw = response, response.response
        self.status, self.reason = int(response.status), str(response.reason)

    @property
    def closed(self) -> bool:
        return bool(getattr(self._raw, "closed", False))

    def read(self) -> bytes:
        try:
            data: bytes = self._response.read()
            return data
        finally:
            self._raw.release_conn()

    def lines(self) -> Iterator[bytes]:
        buffer = b""
        for segment in self._raw.stream(amt=None, decode_content=False):
            buffer += segment
            *lines, buffer = buffer.split(b"\n")
            yield from lines
        if buffer:
            yield buffer

    def shutdown(self) -> None:
        self._raw.shutdown()

    def close(self) -> None:
        self._raw.release_conn()
        self._raw.close()


class OfficialTransport:
    """The official client's ApiClient, for kubeconfig files (any authentication they hold)."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    def open(self, method: str, path: str, *, query: Mapping[str, str | int] | None, headers: dict[str, str],
             body: Any, timeout: Timeout, stream: bool) -> Response:
        _, url, headers, body, _ = self.api_client.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
        return _OfficialResponse(response)

    def close(self) -> None:
        try:
            self.api_client.close()
        except Exception:  # closing a pool that never connected can raise; nothing to do
            pass


def _official(kubeconfig: str | None, user_agent: str | None) -> OfficialTransport:
    # deferred: +21.8 MiB PSS in a Kubernetes watcher (bench/speaker_memory.py, 2026-12-06); only
    # a kubeconfig needs the official loader.
    import kubernetes.client
    import kubernetes.config

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, client_configuration=configuration
    )
    # A failing API server must surface at once: our own loops back off (tenacity).
    configuration.retries = 0
    api_client = kubernetes.client.ApiClient(configuration)
    if user_agent:
        api_client.user_agent = user_agent
    return OfficialTransport(api_client)


class RawClient:
    """Thin JSON calls over a `Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @classmethod
    def connect(
        cls, *, kubeconfig: str | None = None, host: str | None = None, user_agent: str | None = None
    ) -> RawClient:
        """In-cluster config when running in a pod (and no kubeconfig given), else the kubeconfig.

        `host` (tests, `kubectl proxy`) skips both: plain HTTP, no credentials.
        """
        if host:
            return cls(StdlibTransport(Endpoint(url=host), user_agent=user_agent))
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return cls(StdlibTransport(in_cluster_endpoint(), user_agent=user_agent))
        return cls(_official(kubeconfig, user_agent))

    def close(self) -> None:
        self.transport.close()

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: Timeout = 10.0,
        stream: bool = False,
    ) -> Response:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            return self.transport.open(method, path, query=query, headers=headers, body=body, timeout=timeout,
                                       stream=stream)
        except ApiError:
            raise
        except Exception as exc:  # socket, TLS, urllib3 errors: the API server is unreachable
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float = 10.0,
    ) -> Obj:
        response = self._open(method, path, query=query, body=body, content_type=content_type, timeout=timeout)
        try:
            data = response.read()
        except Exception as exc:
            raise ApiError(0, "Unreachable", f"{type(exc).__name__}: {exc}") from exc
        payload = _decode(data)
        if not 200 <= response.status < 300:
            raise ApiError(
                response.status, str(payload.get("reason") or response.reason), str(payload.get("message") or "")
            )
        return payload

    def watch(
        self, path: str, *, query: Mapping[str, str | int], timeout: float, on_open: Callable[[Any], None] | None = None
    ) -> Iterator[Obj]:
        """Yield watch events (dicts with `type` and `object`) until the server ends the stream.

        An ERROR event becomes an `ApiError` (410 Gone included). `on_open` gets
        the open `Response`, so another thread can `shutdown()` it to stop.
        """
        response = self._open("GET", path, query={**query, "watch": "true"}, timeout=(5.0, timeout), stream=True)
        if on_open is not None:
            on_open(response)
        try:
            if not 200 <= response.status < 300:
                payload = _decode(response.read())
                raise ApiError(
                    response.status, str(payload.get("reason") or response.reason), str(payload.get("message", ""))
                )
            for line in response.lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(
                        int(status.get("code") or 500), str(status.get("reason")), str(status.get("message"))
                    )
                yield event
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(0, "Unreachable", f"watch {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            response.close()


def _decode(data: bytes | None) -> Obj:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {"message": data[:200].decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"items": value}
