"""The Kubernetes worker process: `run(settings, inbox, outbox)` for both roles.

controller: watcher + allocator + lease + status writer in one process
(`ControllerLoop`). The allocator is pure and cheap, and keeping it next to the
writer means an allocation is written only by the replica that computed it,
from the config it computed it on. That one allocation travels with the
ConfigLoaded to the supervisor, whose allocator worker passes it on for
/status, /metrics and `metalloid explain`: written and shown are one result.

speaker: watcher (with the speaker pods as membership peers) that sends
ConfigLoaded, and writes what this speaker reports: ServiceL2Status and the
nodeAssigned / announceFailed Events from the announcers' real state
(`AnnouncementsChanged`, routed here by the supervisor), its
ConfigurationState from the config's verdict. The assignments Service status
holds are read once, by this watcher, and attached to the ConfigLoaded; the
speaker's allocator-role worker (`kubernetes.status_allocator`) passes them on
so the supervisor routes them to membership and the announcers as usual.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from supervisor.kubernetes import kinds
from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.events import WARNING
from supervisor.messages import (
    AnnouncementsChanged,
    AnnouncerFailed,
    ConfigLoaded,
    ConfigRejected,
    Control,
    MetricKind,
    MetricUpdate,
)
from supervisor.supervising.child import Heartbeat, Inbox, Outbox, receive
from supervisor.supervising.settings import ControllerSettings, SpeakerSettings

if TYPE_CHECKING:
    from supervisor.config.diagnostics import Diagnostic
    from supervisor.config.model import Config

log = logging.getLogger(__name__)

Put = Callable[[object], None]
# A status write or Event that failed (API down) is tried again this often.
RETRY_SECONDS = 2.0
Handlers = tuple[Callable[[], None], Callable[[object], None]]

_DOCS = {
    "metallb_k8s_client_updates_total": "Number of k8s object updates that have been applied.",
    "metallb_k8s_client_update_errors_total": "Number of k8s object updates that failed for some reason.",
    "metalloid_k8s_watch_crashes_total": "Watches that failed on an unexpected error (a malformed object) and "
    "re-listed after a backoff",
}


def run(settings: ControllerSettings | SpeakerSettings, inbox: Inbox, outbox: Outbox) -> None:
    client = RawClient.connect(
        kubeconfig=settings.kubeconfig,
        host=settings.api_host,
        user_agent=f"metalloid-{settings.k8s_role}/{settings.node_name}",
    )
    lock = threading.Lock()

    def put(message: object) -> None:
        with lock:  # the emitter thread and this loop share the outbox
            outbox.put(message)

    def metric(name: str, value: float) -> None:
        put(MetricUpdate(name=name, kind=MetricKind.COUNTER, documentation=_DOCS.get(name, name), value=value))

    if isinstance(settings, ControllerSettings):
        stop, on_message = _controller(settings, client, put, metric)
    else:
        stop, on_message = _speaker(settings, client, put, metric)
    beat = Heartbeat(settings.name, outbox, settings.heartbeat_seconds)
    try:
        while True:
            with lock:
                beat.maybe()
            message = receive(inbox, beat.due_in(time.monotonic()))
            if message is Control.STOP:
                return
            if message is not None:
                on_message(message)
    finally:
        stop()
        client.close()


def _controller(
    settings: ControllerSettings, client: RawClient, put: Put, metric: Callable[[str, float], None]
) -> Handlers:
    # deferred: the controller's modules, +1.3 MiB PSS in the speaker's allocator and +0.3 MiB in its
    # watcher, which run from this module too (python -X importtime + /proc PSS, 2026-12-06).
    from supervisor.kubernetes.controller import ControllerLoop, ControllerOptions
    from supervisor.kubernetes.watcher import WatchOptions

    options = ControllerOptions(
        namespace=settings.namespace,
        lb_class=settings.lb_class,
        lease_name=settings.lease_name,
        identity=os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or settings.node_name,
        watch=WatchOptions(namespace=settings.namespace),
    )
    # The loop allocates once per config and writes that result; each ConfigLoaded
    # reaches the supervisor with it attached, for the allocator worker to pass on.
    loop = ControllerLoop(client, options, forward=put, metric=metric, validators=_plugin_validators()).start()
    return loop.stop, lambda message: None


def _speaker(settings: SpeakerSettings, client: RawClient, put: Put, metric: Callable[[str, float], None]) -> Handlers:
    # deferred: the speaker's writers, +0.3 MiB PSS in the controller's watcher (2026-12-06).
    from supervisor.announcing.api import AnnouncerState
    from supervisor.kubernetes.assignments import speaker_allocation
    from supervisor.kubernetes.bgpstatus import BGPStatusWriter, wanted_bgp_statuses
    from supervisor.kubernetes.confstate import ConfigStateWriter, configuration_state
    from supervisor.kubernetes.events import EventRecorder
    from supervisor.kubernetes.l2status import L2StatusWriter, wanted_statuses
    from supervisor.kubernetes.speaker import AnnouncementReporter
    from supervisor.kubernetes.watcher import KubeWatcher, WatchOptions

    node, namespace = settings.node_name, settings.namespace
    pod_name = os.environ.get("POD_NAME")
    recorder = EventRecorder(client, component="metallb-speaker", host=node)
    reporter = AnnouncementReporter(recorder, node)
    def speaker_pod() -> Mapping[str, Any] | None:
        return watcher.cache.get("Pod", namespace, pod_name) if pod_name else None

    l2status = L2StatusWriter(client, namespace=namespace, node=node, owner=speaker_pod)
    bgpstatus = BGPStatusWriter(client, namespace=namespace, node=node, owner=speaker_pod)
    confstate = ConfigStateWriter(client, namespace=namespace)
    # What the announcers really do (per announcer worker), and the config's
    # verdict: (errors, warnings), errors None until the first config is read.
    announced: dict[str, AnnouncerState] = {}
    verdict: list[tuple[tuple[Diagnostic, ...] | None, tuple[Diagnostic, ...]]] = [(None, ())]
    lock = threading.Lock()
    changed, stopping = threading.Event(), threading.Event()

    def report() -> bool:
        with lock:
            states = tuple(announced[w] for w in sorted(announced))
            errors, warnings = verdict[0]
        done = confstate.update(configuration_state("speaker", node, errors=errors, warnings=warnings))
        if not states:
            # No announcer has answered a view yet (a start, or a watcher restart
            # before the replay is read): "nothing announced" is not known yet,
            # and acting on it would delete this node's ServiceL2Status.
            return done
        _, reported = reporter.update(states, lambda key: watcher.cache.get("Service", key.namespace, key.name))
        l2_done = l2status.update(wanted_statuses(states))
        bgp_done = bgpstatus.update(wanted_bgp_statuses(states))
        return l2_done and bgp_done and reported and done

    def reporting() -> None:
        # API writes wait on the API server, up to a request timeout when it
        # hangs: on the worker loop that would starve the heartbeats (the
        # supervisor kills the watcher as hung), so they get a thread of their
        # own. What failed is tried again after RETRY_SECONDS.
        while True:
            changed.wait()
            if stopping.is_set():
                return
            changed.clear()
            if not report():
                changed.wait(RETRY_SECONDS)
                changed.set()

    def emit(message: ConfigLoaded | ConfigRejected) -> None:
        if isinstance(message, ConfigLoaded):
            # Read once, here: the allocator worker passes these assignments on.
            message = replace(message, allocation=speaker_allocation(message.config))
        put(message)
        with lock:
            if isinstance(message, ConfigLoaded):
                verdict[0] = ((), message.warnings)
            else:
                verdict[0] = (message.diagnostics, verdict[0][1])
        changed.set()

    watcher = KubeWatcher(client, WatchOptions(namespace=namespace, speaker_pods=True), emit, metric=metric,
                          validators=_plugin_validators())
    watcher.start()
    threading.Thread(target=reporting, name="speaker-status", daemon=True).start()

    def on_message(message: object) -> None:
        # The announcers' real state, routed here by the supervisor.
        if isinstance(message, AnnouncementsChanged):
            with lock:
                announced[message.worker] = message.state
            changed.set()
        elif isinstance(message, AnnouncerFailed):
            # Off this loop: an Event write waits on the API server (see reporting()).
            threading.Thread(target=announcer_failed, args=(message,), name="announcer-failed", daemon=True).start()

    def announcer_failed(message: AnnouncerFailed) -> None:
        node = watcher.cache.get("Node", "", settings.node_name) or {"metadata": {"name": settings.node_name}}
        recorder.record(node, kinds.NODE, WARNING, ANNOUNCER_FAILED_REASON,
                        f"announcer {message.protocol} is FAILED on this node (restart budget spent; the other "
                        f"announcers keep announcing): {message.error}", slot=f"announcer-{message.protocol}")

    def stop() -> None:
        stopping.set()
        changed.set()  # the thread may be inside a write; it is a daemon and ends with us
        watcher.stop()

    return stop, on_message


ANNOUNCER_FAILED_REASON = "AnnouncerFailed"


def _plugin_validators() -> list[Callable[[Config], list[Diagnostic]]]:
    """The plugins' `metalloid_validate_config` hooks, as `metalloid check` and the file watcher run them."""
    # deferred: every plugin, +1.6 MiB PSS in the speaker's allocator, which runs from this module too
    # and validates nothing (2026-12-06).
    from supervisor.plugin_checks import running_validators

    return running_validators()
