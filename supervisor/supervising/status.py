"""The /status document, built from the supervisor's routed state. Pure.

`metalloid status` and `metalloid explain` read exactly these keys; keep them
stable. Announcers contribute through their StatusReport payloads:
"announcements" (a list of Announcement-like dicts: service, ip, protocol,
node, interfaces, reason), optionally "elections" ({"ns/name": {"winner",
"ranking", "excluded"}}, or a list of such dicts each with a "service" key, as
the layer2 plugin sends) and "sockets_ready" (readiness): the
`AnnouncerStatus` contract of `supervisor.announcing.api`. The whole payload is
also shown under "plugins", keyed by protocol. The announcer host adds its own
key "_host" (plugin load failures, status contract violations), collected in
"plugin_errors".

"announcers" (added by the supervisor with `announcer_rows`) says which
announcers run and why, and which are FAILED or not responding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from supervisor.allocating.results import AllocationResult
from supervisor.announcing.enabling import Decision
from supervisor.config.model import ServiceKey
from supervisor.serving.documents import service_document
from supervisor.supervising.lifecycle import State, WorkerState, silence
from supervisor.supervising.rendering import Field, Row, Rows, plain
from supervisor.supervising.state import RoutedState

# A process's run-queue wait so far in seconds, None if unknown (starvation.run_queue_wait).
RunQueueWaits = Callable[[int], float | None]


def build_status(
    state: RoutedState,
    workers: Sequence[WorkerState],
    *,
    now: float,
    version: str,
    protocols: Mapping[str, str],
) -> dict[str, Any]:
    """`protocols` maps announcer worker name → protocol."""
    return {name: plain(compute()) for name, _, compute in status_fields(state, workers, now=now, version=version,
                                                                         protocols=protocols)}


def status_fields(
    state: RoutedState,
    workers: Sequence[WorkerState],
    *,
    now: float,
    version: str,
    protocols: Mapping[str, str],
) -> list[Field]:
    """The document's fields in order, each with the objects it is computed from (`rendering.StatusRenderer`).

    Everything but "workers" comes from the routed state and the announcers'
    last StatusReports; "workers" holds uptimes, computed every time.
    """
    memo: dict[str, Any] = {}

    def plugins() -> dict[str, dict[str, Any]]:
        if "plugins" not in memo:
            memo["plugins"] = {protocol: dict(state.statuses.get(worker, {})) for worker, protocol in protocols.items()}
        return memo["plugins"]  # type: ignore[no-any-return]

    def announcements() -> list[Any]:
        if "announcements" not in memo:
            memo["announcements"] = [a for payload in plugins().values() for a in _list(payload.get("announcements"))]
        return memo["announcements"]  # type: ignore[no-any-return]

    # Each field's own sources: an announcer's status report (every change of
    # what it announces) re-renders the fields built from it, not the config's.
    reports = (tuple(sorted(protocols.items())), *(state.statuses.get(w) for w in sorted(protocols)))
    return [
        ("node", None, lambda: state.node_name),
        ("mode", None, lambda: state.mode),
        ("version", None, lambda: version),
        ("config", (state.loaded, state.rejected, state.generation, state.allocation), lambda: _config(state)),
        ("pools", (state.allocation, state.allocated_config), lambda: _pools(state)),
        ("services", (state.allocation, *reports), lambda: _services(state, plugins(), announcements())),
        ("announcements", reports, announcements),
        ("members", (state.node_name, state.members), lambda: _members(state)),
        ("workers", None, lambda: [_worker(ws, now) for ws in workers]),
        ("plugins", reports, plugins),
        ("plugin_errors", reports, lambda: _plugin_errors(plugins())),
    ]


def _plugin_errors(plugins: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Load failures and status contract violations the announcer hosts reported, once each."""
    found: list[dict[str, Any]] = []
    for protocol, payload in sorted(plugins.items()):
        host = payload.get("_host")
        if not isinstance(host, Mapping):
            continue
        for failure in _list(host.get("load_failures")):
            if isinstance(failure, Mapping) and dict(failure) not in found:
                found.append(dict(failure))
        for problem in _list(host.get("status_errors")):
            found.append({"plugin": protocol, "hook": None, "reason": f"status(): {problem}"})
    return found


def announcer_rows(
    decisions: Sequence[Decision],
    slots: Mapping[str, tuple[WorkerState, float]],
    statuses: Mapping[str, Mapping[str, Any]],
    *,
    now: float,
    waits: RunQueueWaits | None = None,
) -> list[dict[str, Any]]:
    """One row per announcer the flag or the config mentions: runs or not, why, and how it is.

    `slots` maps protocol → (its worker's state, its hang deadline). "state" is
    the worker's, except FAILED (restart budget spent) and NOT-RESPONDING (no
    heartbeat for half its hang deadline, by its own time: it is about to be
    killed as hung; `waits`, see `_late`).
    """
    rows = []
    for decision in sorted(decisions, key=lambda d: d.protocol):
        found = slots.get(decision.protocol)
        row: dict[str, Any] = {"protocol": decision.protocol, "enabled": decision.enabled,
                               "reason": decision.reason, "worker": None, "state": "STOPPED", "ready": False,
                               "hang_timeout_seconds": None, "last_error": None}
        if found is not None:
            ws, deadline = found
            payload = statuses.get(ws.name) or {}
            state = ws.state.value
            if ws.state is State.FATAL:
                state = "FAILED"
            elif ws.state is State.EXITED:
                state = "STOPPED"
            elif _late(ws, now, deadline, waits):
                state = "NOT-RESPONDING"
            row.update(worker=ws.name, state=state, hang_timeout_seconds=deadline, last_error=ws.last_error,
                       ready=ws.state is State.RUNNING and payload.get("sockets_ready", True) is not False
                       and state == "RUNNING")
        rows.append(row)
    return rows


# A heartbeat is due every 0.5 s; missing three is not load any more.
LATE_MIN_SECONDS = 1.5


def _late(ws: WorkerState, now: float, deadline: float, waits: RunQueueWaits | None = None) -> bool:
    """No heartbeat for half the hang deadline (at least LATE_MIN_SECONDS): hanging, not yet killed.

    Judged as the hang killer judges (`lifecycle.hung`): with `waits` (a
    process's run-queue wait so far, `starvation.run_queue_wait`), the time
    the worker spent waiting for a CPU since its last heartbeat is not
    silence, so a worker that is only slow because the node is loaded is
    neither NOT-RESPONDING nor makes /readyz fail, as it is not killed.
    """
    if ws.state is not State.RUNNING or ws.last_heartbeat is None:
        return False
    limit = max(LATE_MIN_SECONDS, deadline / 2)
    if now - ws.last_heartbeat <= limit:
        return False
    if waits is None or ws.pid is None:
        return True
    quiet = silence(since=ws.last_heartbeat, now=now, waited_then=ws.waited_at_heartbeat, waited_now=waits(ws.pid))
    return quiet > limit


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _config(state: RoutedState) -> dict[str, Any]:
    loaded = state.loaded
    rejected = state.rejected
    warnings = [str(d) for d in loaded.warnings if not d.is_error] if loaded else []
    if state.allocation is not None:
        warnings += list(state.allocation.result.warnings)
    return {
        "origin": (loaded.origin if loaded else rejected.origin if rejected else ""),
        "generation": state.generation,
        "loaded": loaded is not None,
        "stale": state.stale,
        "errors": [str(d) for d in rejected.diagnostics] if rejected else [],
        # Errors confined to one object of the loaded config: that Service is pending, the rest is served.
        "object_errors": [str(d) for d in loaded.warnings if d.is_error] if loaded else [],
        "warnings": warnings,
    }


def _pools(state: RoutedState) -> list[dict[str, Any]]:
    if state.allocation is None or state.allocated_config is None:
        return []
    counts = {c.pool: c for c in state.allocation.result.pools}
    pools = []
    for pool in state.allocated_config.pools:
        c = counts.get(pool.name)
        pools.append({
            "name": pool.name,
            "addresses": [r.text for r in pool.addresses],
            "total_v4": c.total_v4 if c else 0,
            "assigned_v4": c.assigned_v4 if c else 0,
            "available_v4": c.available_v4 if c else 0,
            "total_v6": c.total_v6 if c else 0,
            "assigned_v6": c.assigned_v6 if c else 0,
            "available_v6": c.available_v6 if c else 0,
        })
    return pools


def _services(state: RoutedState, plugins: Mapping[str, Mapping[str, Any]], announcements: list[Any]) -> Rows:
    """One row per Service, each with what it is built from (`rendering.Rows`: a reload re-renders one of 1,000)."""
    if state.allocation is None:
        return Rows(())
    result = state.allocation.result
    # Indexed once by Service: a scan per Service was 1,000 x 1,000 steps and
    # most of a 140 ms /status with 1,000 Services (bench/status.py).
    # Each Service's (protocol, node) pairs, the same tuple for every Service announced alike: the rows
    # keep them as their sources, 1,000 small dicts of lists would be ~0.3 MiB more in the supervisor.
    pairs_by: dict[str, list[tuple[str, str]]] = {}
    for a in announcements:
        if type(a) is dict or isinstance(a, Mapping):  # exact dicts first: the ABC check per item was a tenth
            pair = (str(a.get("protocol", "")), str(a.get("node")))
            pairs = pairs_by.setdefault(str(a.get("service")), [])
            if pair not in pairs:
                pairs.append(pair)
    alike: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}
    announced_by = {name: alike.setdefault(t, t) for name, pairs in pairs_by.items() if (t := tuple(pairs))}
    # Each plugin's elections: keyed by Service (a mapping), or the layer2 plugin's list of
    # {"service", "ip", "winner", ...} of which the first entry per Service counts.
    kinds: list[tuple[str, Mapping[str, Any] | None]] = []
    listed: dict[str, dict[str, Any]] = {}
    for protocol, payload in plugins.items():
        found = payload.get("elections")
        kinds.append((protocol, found if isinstance(found, Mapping) else None))
        if isinstance(found, (list, tuple)):
            for entry in found:
                if type(entry) is dict or isinstance(entry, Mapping):
                    listed.setdefault(str(entry.get("service")), {}).setdefault(protocol, entry)
    rows: list[Row] = []
    assignments, pending, problems = result.assignments, result.pending, result.problems
    # ServiceKey's own order, compared as plain tuples (its dataclass __lt__ was a sixth of this function).
    for key in sorted(set(assignments) | set(pending), key=lambda k: (k.namespace, k.name)):
        name = str(key)
        mine = listed.get(name, {})
        elections: list[Any] = []  # protocol, its election, ...: flat, so a row keeps no dict of its own
        for protocol, by_service in kinds:
            if by_service is not None:
                if name in by_service:
                    elections += (protocol, by_service[name])
            elif protocol in mine:
                elections += (protocol, mine[protocol])
        announced = announced_by.get(name, ())
        sources = (assignments.get(key), pending.get(key), problems.get(key), announced, *elections)
        rows.append((name, sources, partial(_service, result, key, announced, tuple(elections))))
    return Rows(rows)


def _service(result: AllocationResult, key: ServiceKey, announced: tuple[tuple[str, str], ...],
             elections: tuple[Any, ...]) -> dict[str, Any]:
    """One Service's row; `announced`: (protocol, node) pairs; `elections` flat: protocol, its election, ..."""
    nodes: dict[str, list[str]] = {}
    for protocol, node in announced:
        nodes.setdefault(protocol, []).append(node)
    return {
        **service_document(result, key),
        "announced": nodes,
        "elections": {protocol: dict(entry) if isinstance(entry, Mapping) else entry
                      for protocol, entry in zip(elections[::2], elections[1::2], strict=True)},
    }


def _members(state: RoutedState) -> list[dict[str, Any]]:
    if state.members is None:
        return [{"name": state.node_name, "alive": True, "last_heard_seconds": 0.0, "digest_mismatch": []}]
    mismatch = dict(state.members.digest_mismatch)
    return [
        {
            "name": m.name,
            "alive": m.alive,
            "last_heard_seconds": m.last_heard_seconds,
            "basis": m.basis,
            "digest_mismatch": [str(k) for k in mismatch.get(m.name, ())],
        }
        for m in state.members.members
    ]


def _worker(ws: WorkerState, now: float) -> dict[str, Any]:
    up = ws.state in (State.STARTING, State.RUNNING, State.STOPPING) and ws.started_at is not None
    return {
        "name": ws.name,
        "state": ws.state.value,
        "pid": ws.pid,
        "restarts": ws.restarts,
        "last_error": ws.last_error,
        "uptime_seconds": round(now - ws.started_at, 3) if up and ws.started_at is not None else None,
    }


def readiness(
    state: RoutedState,
    workers: Sequence[WorkerState],
    announcers: Sequence[str],
    *,
    now: float | None = None,
    hang_deadlines: Mapping[str, float] | None = None,
    waits: RunQueueWaits | None = None,
) -> tuple[bool, str]:
    """Ready: a config is loaded, every worker RUNNING, no announcer FAILED or hanging, every one ready.

    With `now` and `hang_deadlines` (announcer worker → seconds), an announcer
    silent for half its deadline is not ready: it hangs and will be killed.
    """
    if state.loaded is None:
        return False, "no valid config loaded yet"
    if state.allocation is None:
        return False, "waiting for the first allocation"
    for ws in workers:
        if ws.state is State.FATAL and ws.name in announcers:
            return False, f"announcer {ws.name} FAILED (restart budget spent): {ws.last_error}"
        if ws.state is not State.RUNNING:
            return False, f"worker {ws.name} is {ws.state.value}"
        deadline = (hang_deadlines or {}).get(ws.name)
        if now is not None and deadline is not None and _late(ws, now, deadline, waits):
            assert ws.last_heartbeat is not None
            return False, (f"announcer {ws.name} is not responding (no heartbeat for "
                           f"{now - ws.last_heartbeat:.1f}s; killed at {deadline:g}s)")
    for worker in announcers:
        payload = state.statuses.get(worker)
        if payload is None:
            return False, f"announcer {worker} has not reported its status yet"
        if payload.get("sockets_ready") is False:
            return False, f"announcer {worker} does not hold its sockets yet"
    return True, "ok"
