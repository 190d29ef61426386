"""A stateful fake Kubernetes API server over real HTTP, for the real `kubernetes` client.

There is no kube-apiserver here (FACTS.md) and kmock is not faithful, so this
serves what metalloid relies on: list with resourceVersion and selectors,
chunked watch from a resourceVersion (bookmarks, timeoutSeconds, 410 Gone after
compaction), create 201/409, update with optimistic concurrency, the three
patch types, the status subresource, delete. Faults are injected through
`FakeApiServer.faults`. Not served: auth, admission, pagination, apply-patch.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakeapi import admission, matching
from tests.fakeapi.resources import Resource, Target, by_kind, parse_path
from tests.fakeapi.store import ApiError, Obj, Store, WatchEvent


@dataclass
class Faults:
    """Switches a test flips to break the server on purpose."""

    # "503": answer every request 503; "close": drop connections without an answer.
    outage: str | None = None
    # Answer the next N watch requests with a 410 Gone ERROR event.
    gone_next_watches: int = 0
    # User-Agent substrings answered 503 (partitions one client from the server).
    blocked_agents: set[str] = field(default_factory=set)
    # Bumped by `break_watches()`: open watch streams end abruptly.
    watch_epoch: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    agent: str
    code: int
    at: float


class FakeApiServer:
    def __init__(
        self, *, history: int = 1000, bookmark_interval: float = 1.0, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.store = Store(history=history)
        self.faults = Faults()
        self.requests: list[Request] = []
        self.bookmark_interval = bookmark_interval
        self.closing = threading.Event()
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"api": self})
        self._http = _Server((host, port), handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), name="fakeapi", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing.set()
        with self.store.cond:
            self.store.cond.notify_all()
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests (no HTTP) ----------------------------------------------------------
    def create(self, obj: Obj) -> Obj:
        res = by_kind(obj["kind"])
        return self.store.create(res, obj.get("metadata", {}).get("namespace"), json.loads(json.dumps(obj)))

    def store_resource(self, kind: str) -> Resource:
        return by_kind(kind)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj:
        return self.store.get(by_kind(kind), namespace, name)

    def list(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return self.store.list(by_kind(kind), namespace)[0]

    def count(self, kind: str, predicate: Callable[[Obj], bool]) -> int:
        """How many stored objects of `kind` satisfy `predicate` (no copies: cheap to poll)."""
        res = by_kind(kind)
        with self.store.cond:
            return sum(
                1
                for (g, p, _, _), o in self.store._objects.items()
                if (g, p) == (res.group, res.plural) and predicate(o)
            )

    def update_status(self, kind: str, namespace: str | None, name: str, status: Obj) -> Obj:
        return self.store.update(by_kind(kind), namespace, name, {"status": status}, subresource="status")

    def break_watches(self) -> None:
        self.faults.watch_epoch += 1
        with self.store.cond:
            self.store.cond.notify_all()

    @contextmanager
    def outage(self, mode: str = "503") -> Iterator[None]:
        self.faults.outage = mode
        self.break_watches()
        try:
            yield
        finally:
            self.faults.outage = None

    def writes(self, agent: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method in ("POST", "PUT", "PATCH", "DELETE") and (agent is None or agent in r.agent)
            ]

    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs when a watcher opens its eight
    # lists at once; the client then waits a full second to retransmit.
    request_queue_size = 128
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    api: FakeApiServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle plus
        # delayed ACKs add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `api.requests`
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- dispatch -----------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        try:
            self._serve_one(method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (a stopped watcher): nothing to answer

    def _serve_one(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        agent = self.headers.get("User-Agent", "")
        body = self._body()
        faults = self.api.faults
        if faults.outage == "close":
            self.close_connection = True
            self._record(method, url, agent, 0)
            return
        if faults.outage == "503" or any(a in agent for a in faults.blocked_agents):
            self._send(503, ApiError(503, "ServiceUnavailable", "the server is unavailable (fault injected)").status())
            self._record(method, url, agent, 503)
            return
        code = 200
        try:
            if url.path == "/version":
                self._send(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fakeapi"})
                return
            target = parse_path(url.path)
            if target is None:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({url.path})")
            if method == "GET" and target.name is None and query.get("watch") in ("true", "1"):
                self._record(method, url, agent, 200)
                self._watch(target, query)
                return
            code, result = self._handle(method, target, query, body)
            self._send(code, result)
        except ApiError as exc:
            code = exc.code
            self._send(exc.code, exc.status())
        except (ValueError, KeyError, TypeError) as exc:
            code = 400
            self._send(400, ApiError(400, "BadRequest", str(exc)).status())
        self._record(method, url, agent, code)

    def _handle(self, method: str, t: Target, query: dict[str, str], body: Obj | list[Obj] | None) -> tuple[int, Obj]:
        store, res = self.api.store, t.resource
        if method != "GET":
            admission.admit(store.list(by_kind("ValidatingWebhookConfiguration"), None)[0], method, t)
        if method == "GET" and t.name is None:
            items, rv = store.list(res, t.namespace)
            keep_l, keep_f = (
                matching.label_selector(query.get("labelSelector")),
                matching.field_selector(query.get("fieldSelector")),
            )
            shown = [self._shape(res, t.version, o, in_list=True) for o in items if keep_l(o) and keep_f(o)]
            return 200, {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version(t.version),
                "metadata": {"resourceVersion": str(rv)},
                "items": shown,
            }
        if method == "POST" and t.name is None:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "body must be an object")
            return 201, self._shape(res, t.version, store.create(res, t.namespace, body))
        if t.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} needs a name")
        if method == "GET":
            return 200, self._shape(res, t.version, store.get(res, t.namespace, t.name))
        if method == "DELETE":
            return 200, self._shape(res, t.version, store.delete(res, t.namespace, t.name))
        if t.subresource == "status" and not res.status:
            raise ApiError(404, "NotFound", f"{res.plural} has no status subresource")
        if method == "PUT":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "body must be an object")
            return 200, self._shape(
                res, t.version, store.update(res, t.namespace, t.name, body, subresource=t.subresource)
            )
        if method == "PATCH":
            return 200, self._shape(res, t.version, self._patch(t, body))
        raise ApiError(405, "MethodNotAllowed", method)

    def _patch(self, t: Target, body: Obj | list[Obj] | None) -> Obj:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        current = self.api.store.get(t.resource, t.namespace, t.name or "")
        if kind == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "BadRequest", "a JSON patch is a list of operations")
            try:
                patched = matching.json_patch(current, body)
            except matching.PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            # A JSON patch is applied to the version read: precondition on it.
            patched.setdefault("metadata", {})["resourceVersion"] = patched["metadata"].get(
                "resourceVersion", current["metadata"]["resourceVersion"]
            )
        elif kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a merge patch is an object")
            patched = matching.merge_patch(current, body)
            # Only a resourceVersion written in the patch itself is a precondition.
            if "resourceVersion" not in (body.get("metadata") or {}):
                patched["metadata"].pop("resourceVersion", None)
        else:
            raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {kind!r}")
        return self.api.store.update(t.resource, t.namespace, t.name or "", patched, subresource=t.subresource)

    # -- watch --------------------------------------------------------------------------------
    def _watch(self, t: Target, query: dict[str, str]) -> None:
        api, store, res = self.api, self.api.store, t.resource
        keep_l, keep_f = (
            matching.label_selector(query.get("labelSelector")),
            matching.field_selector(query.get("fieldSelector")),
        )
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        epoch = api.faults.watch_epoch
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        requested = query.get("resourceVersion")
        if api.faults.gone_next_watches > 0:
            api.faults.gone_next_watches -= 1
            self._gone(ApiError(410, "Expired", "too old resource version (fault injected)"))
            return
        if requested in (None, "", "0"):
            items, position = store.list(res, t.namespace)
            for obj in items:
                if keep_l(obj) and keep_f(obj):
                    self._chunk({"type": "ADDED", "object": self._shape(res, t.version, obj)})
        else:
            position = int(requested)
        deadline = time.monotonic() + timeout
        last_mark = time.monotonic()
        while not api.closing.is_set():
            if api.faults.watch_epoch != epoch:
                self.close_connection = True  # abrupt end, no terminating chunk
                return
            try:
                with store.cond:
                    events = store.events_after(position)
                    if not events:
                        store.cond.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
                        events = store.events_after(position)
            except ApiError as exc:
                self._gone(exc)
                return
            for event in events:
                position = event.rv
                shown = self._watch_event(t, event, keep_l, keep_f)
                if shown is not None:
                    self._chunk(shown)
            now = time.monotonic()
            if now >= deadline:
                break
            if bookmarks and now - last_mark >= api.bookmark_interval:
                last_mark = now
                self._chunk(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": res.kind,
                            "apiVersion": res.api_version(t.version),
                            "metadata": {"resourceVersion": str(position)},
                        },
                    }
                )
        self._end()

    def _watch_event(
        self, t: Target, event: WatchEvent, keep_l: matching.Predicate, keep_f: matching.Predicate
    ) -> Obj | None:
        res = t.resource
        if (event.group, event.plural) != (res.group, res.plural):
            return None
        if t.namespace is not None and event.obj.get("metadata", {}).get("namespace") != t.namespace:
            return None
        now_in = keep_l(event.obj) and keep_f(event.obj)
        was_in = event.old is not None and keep_l(event.old) and keep_f(event.old)
        kind = event.type
        if event.type == "MODIFIED" and not now_in:
            if not was_in:
                return None
            kind = "DELETED"  # left the selection: to this watcher it is gone
        elif event.type == "MODIFIED" and not was_in:
            kind = "ADDED"
        elif event.type in ("ADDED", "DELETED") and not now_in:
            return None
        return {"type": kind, "object": self._shape(res, t.version, event.obj)}

    def _gone(self, exc: ApiError) -> None:
        self._chunk({"type": "ERROR", "object": exc.status()})
        self._end()

    # -- plumbing -----------------------------------------------------------------------------
    def _shape(self, res: Resource, version: str, obj: Obj, *, in_list: bool = False) -> Obj:
        if in_list and not res.custom:
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
            return obj
        return {
            "kind": res.kind,
            "apiVersion": res.api_version(version),
            **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")},
        }

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _send(self, code: int, payload: Obj) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, payload: Obj) -> None:
        data = json.dumps(payload).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _record(self, method: str, url: urllib.parse.SplitResult, agent: str, code: int) -> None:
        self.api.log(Request(method, url.path, url.query, agent, code, time.monotonic()))
