"""The Kubernetes watcher: the API in, the same ConfigLoaded / ConfigRejected as the file watcher out.

One thread per kind lists, then watches from the listed resourceVersion with
bookmarks; a 410 Gone re-lists (the cache is replaced, so deletions missed in
the gap disappear too); any other failure reconnects after a tenacity backoff
and resumes from the last version seen, and an unexpected exception (a
malformed object) is logged, counted and re-lists after the backoff instead
of ending the kind's thread. When the cache changes (debounced
~50 ms, at most `max_delay` (100 ms) late under a constant stream) the whole cache goes
through `parse_objects`, exactly like the YAML path, so the allocator and the
announcers cannot tell which mode they are in. As there, a config-level error
emits ConfigRejected (the last good config stays), an error about one Service
only marks that Service (`supervisor.config.isolation`). Nothing is emitted before every
kind has been listed once: allocating against a half-known cluster would hand
out IPs that Services already hold.

Raw JSON (`supervisor.kubernetes.client`) keeps the process near 43 MiB
instead of 66 with typed models (FACTS.md).
"""

from __future__ import annotations

import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import tenacity

from supervisor.config import lbclass
from supervisor.config.diagnostics import Diagnostic
from supervisor.config.isolation import config_errors, isolate
from supervisor.config.model import Config
from supervisor.config.parsing import parse_objects
from supervisor.config.validation import validate
from supervisor.kubernetes import kinds
from supervisor.kubernetes.cache import ObjectCache
from supervisor.kubernetes.client import ApiError, RawClient
from supervisor.kubernetes.peers import SPEAKER_SELECTOR, nodes_with_speaker_addresses
from supervisor.messages import ConfigLoaded, ConfigRejected
from supervisor.supervising.memory import release_memory

log = logging.getLogger(__name__)

ORIGIN = "kubernetes"
WATCH_CRASHES = "metalloid_k8s_watch_crashes_total"
Emitted = ConfigLoaded | ConfigRejected


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOptions:
    namespace: str = "metallb-system"
    # None: Services without spec.loadBalancerClass (MetalLB's default); else only that class.
    lb_class: str | None = None
    # Speakers also watch their own pods: they are the membership peers.
    speaker_pods: bool = False
    pod_selector: str = SPEAKER_SELECTOR
    debounce_seconds: float = 0.05
    max_delay_seconds: float = 0.1
    # Servers end watches after this; a fresh one resumes from the last version.
    watch_timeout_seconds: int = 300
    backoff_max_seconds: float = 10.0


# A watch that ends sooner than this without a single event (not even a
# bookmark) is treated as a failure and backed off: a real one lasts
# timeoutSeconds or ends with an error.
QUICK_END_SECONDS = 1.0


def build_config(objects: Iterable[Mapping[str, Any]], *, lb_class: str | None,
                 validators: Sequence[Callable[[Config], list[Diagnostic]]] = ()) -> tuple[Config, list[Diagnostic]]:
    """parse_objects and validation over the cache snapshot, then the plugins' validators (as `check` runs them).

    Service errors are confined to their Service (`isolation`); the Config is
    usable when `config_errors(diagnostics)` is empty.
    """
    parsed, diagnostics = parse_objects(list(objects), origin=ORIGIN)
    # A Service of another load balancer class is not ours to judge (MetalLB ignores it): it goes
    # before validation, and so do the parse errors about it. The API lists every EndpointSlice:
    # a Service without one has no endpoint.
    config = replace(lbclass.keep_ours(parsed, lb_class), endpoints_listed=True)
    theirs = {str(s.key) for s in parsed.services} - {str(s.key) for s in config.services}
    diagnostics = [*(d for d in diagnostics if not (d.kind == "Service" and d.name in theirs)), *validate(config)]
    if not config_errors(diagnostics):
        for validator in validators:
            diagnostics.extend(validator(config))
    return isolate(config, diagnostics), diagnostics


class KubeWatcher:
    """List/watch threads, the cache, and the debounced emitter."""

    def __init__(
        self,
        client: RawClient,
        options: WatchOptions,
        emit: Callable[[Emitted], None],
        *,
        metric: Callable[[str, float], None] = lambda name, value: None,
        validators: Sequence[Callable[[Config], list[Diagnostic]]] = (),
    ) -> None:
        self.client = client
        self._validators = tuple(validators)
        self._metric = metric
        self.options = options
        self._emit = emit
        self.kinds: tuple[kinds.Kind, ...] = kinds.WATCHED + ((kinds.POD,) if options.speaker_pods else ())
        self.cache = ObjectCache(self.kinds)
        self.stopping = threading.Event()
        self.generation = 0
        # The generation of the last ConfigLoaded (0: none yet). Not the config itself: once sent, the
        # supervisor holds it, and keeping it here kept a second Config alive through the next parse.
        self.last_good_generation = 0
        self._force = False
        self._threads: list[threading.Thread] = []
        self._streams: set[Any] = set()
        self._streams_lock = threading.Lock()
        self.relists = 0
        self.reconnects = 0
        self.crashes = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for kind in self.kinds:
            t = threading.Thread(target=self._watch_kind, args=(kind,), name=f"watch-{kind.plural}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._emitter, name="watch-emit", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        with self._streams_lock:
            for stream in list(self._streams):
                try:
                    stream.shutdown()
                except Exception:  # already closed: fine
                    pass
        with self.cache.changed:
            self.cache.changed.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def force_emit(self) -> None:
        """Emit the present again (a new generation) even if nothing changed."""
        with self.cache.changed:
            self._force = True
            self.cache.changed.notify_all()

    # -- one kind -----------------------------------------------------------------------------
    def _selector(self, kind: kinds.Kind) -> tuple[str | None, dict[str, str]]:
        """(namespace, extra query) for a kind: metallb.io kinds and pods only in our namespace."""
        if kind.group == "metallb.io":
            return self.options.namespace, {}
        if kind is kinds.POD:
            return self.options.namespace, {"labelSelector": self.options.pod_selector}
        return None, {}

    def _watch_kind(self, kind: kinds.Kind) -> None:
        namespace, extra = self._selector(kind)
        path = kind.path(namespace)
        wait = tenacity.wait_exponential_jitter(multiplier=0.1, max=self.options.backoff_max_seconds, jitter=0.1)
        failures = 0
        version: str | None = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    listed = self.client.request("GET", path, query=extra, timeout=30.0)
                    self.cache.replace(kind.kind, listed.get("items") or [])
                    version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
                    log.debug(
                        "watch.listed kind=%s items=%d version=%s", kind.kind, len(listed.get("items") or []), version
                    )
                query: dict[str, str | int] = {
                    **extra,
                    "resourceVersion": version,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": self.options.watch_timeout_seconds,
                }
                opened, delivered = time.monotonic(), False
                for event in self.client.watch(
                    path, query=query, timeout=self.options.watch_timeout_seconds + 30, on_open=self._opened
                ):
                    failures, delivered = 0, True
                    obj = event.get("object") or {}
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.cache.apply(kind.kind, event["type"], obj)
                    if self.stopping.is_set():
                        return
                if not delivered and time.monotonic() - opened < QUICK_END_SECONDS:
                    # Servers end a watch after timeoutSeconds, usually with
                    # bookmarks first; one that ends at once with nothing (a
                    # proxy answering an empty 200) would otherwise reconnect
                    # in a tight loop against the API server.
                    failures += 1
                    delay = wait(types.SimpleNamespace(attempt_number=failures))  # type: ignore[arg-type]
                    log.info("watch.ended_at_once kind=%s retry_in=%.2fs", kind.kind, delay)
                    self.stopping.wait(delay)
                else:
                    failures = 0
            except ApiError as exc:
                if self.stopping.is_set():
                    return
                if exc.code == 410:
                    # Our version was compacted away: only a fresh list is the truth.
                    log.info("watch.gone kind=%s version=%s action=relist", kind.kind, version)
                    self.relists += 1
                    version = None
                    continue
                failures += 1
                self.reconnects += 1
                delay = wait(types.SimpleNamespace(attempt_number=failures))  # type: ignore[arg-type]
                log.warning("watch.failed kind=%s error=%s retry_in=%.2fs", kind.kind, exc, delay)
                self.stopping.wait(delay)
            except Exception as exc:
                # A bug or an object we cannot digest (malformed): without this
                # the thread dies and the kind stays stale forever, silently.
                if self.stopping.is_set():
                    return
                failures += 1
                self.crashes += 1
                self._metric(WATCH_CRASHES, 1.0)
                delay = wait(types.SimpleNamespace(attempt_number=failures))  # type: ignore[arg-type]
                log.error("watch.crashed kind=%s error=%r retry_in=%.2fs action=relist", kind.kind, exc, delay,
                          exc_info=True)  # fmt: skip
                # The cache may hold half of what was applied: only a fresh list is the truth.
                version = None
                self.stopping.wait(delay)
            finally:
                self._closed()

    def _opened(self, stream: Any) -> None:
        with self._streams_lock:
            self._streams.add(stream)
        if self.stopping.is_set():  # stop() ran while this request was in flight
            stream.shutdown()

    def _closed(self) -> None:
        with self._streams_lock:
            self._streams = {s for s in self._streams if not getattr(s, "closed", False)}

    # -- the emitter --------------------------------------------------------------------------
    def _emitter(self) -> None:
        seen = -1
        cache = self.cache
        while not self.stopping.is_set():
            with cache.changed:
                while not self.stopping.is_set() and not (cache.synced and (cache.version != seen or self._force)):
                    cache.changed.wait(0.5)
                self._force = False
            if self.stopping.is_set():
                return
            first = time.monotonic()
            # Debounce: a burst of events becomes one config, but never later than max_delay.
            while True:
                before = cache.version
                if self.stopping.wait(self.options.debounce_seconds):
                    return
                if cache.version == before or time.monotonic() - first >= self.options.max_delay_seconds:
                    break
            seen = cache.version
            self._emit_now()
            # The parse's garbage and the config just sent: as the file watcher does after a load.
            release_memory()

    def snapshot(self) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        for kind in self.kinds:
            if kind is kinds.POD:
                continue
            if kind is kinds.NODE and self.options.speaker_pods:
                objects.extend(nodes_with_speaker_addresses(self.cache.objects("Node"), self.cache.objects("Pod")))
            else:
                objects.extend(self.cache.objects(kind.kind))
        return objects

    def _emit_now(self) -> None:
        config, diagnostics = build_config(self.snapshot(), lb_class=self.options.lb_class,
                                           validators=self._validators)
        self.generation += 1
        message: Emitted
        errors = tuple(config_errors(diagnostics))
        if errors:
            log.warning("config.rejected generation=%d errors=%d first=%s", self.generation, len(errors), errors[0])
            message = ConfigRejected(generation=self.generation, origin=ORIGIN, diagnostics=tuple(diagnostics))
        else:
            message = ConfigLoaded(
                generation=self.generation, config=config, origin=ORIGIN, warnings=tuple(diagnostics)
            )
            self.last_good_generation = self.generation
            log.info(
                "config.loaded generation=%d services=%d pools=%d nodes=%d",
                self.generation,
                len(config.services),
                len(config.pools),
                len(config.nodes),
            )
        self._emit(message)
