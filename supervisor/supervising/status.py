"""The /status document, built from the supervisor's routed state. Pure.

`metalloid status` and `metalloid explain` read exactly these keys; keep them
stable. Announcers contribute through their StatusReport payloads:
"announcements" (a list of Announcement-like dicts: service, ip, protocol,
node, interfaces, reason), optionally "elections" ({"ns/name": {"winner",
"ranking", "excluded"}}, or a list of such dicts each with a "service" key, as
the layer2 plugin sends) and "sockets_ready" (readiness). The whole payload is
also shown under "plugins", keyed by protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from supervisor.serving.documents import service_document
from supervisor.supervising.lifecycle import State, WorkerState
from supervisor.supervising.state import RoutedState


def build_status(
    state: RoutedState,
    workers: Sequence[WorkerState],
    *,
    now: float,
    version: str,
    protocols: Mapping[str, str],
) -> dict[str, Any]:
    """`protocols` maps announcer worker name → protocol."""
    plugins = {protocol: dict(state.statuses.get(worker, {})) for worker, protocol in protocols.items()}
    announcements = [a for payload in plugins.values() for a in _list(payload.get("announcements"))]
    return {
        "node": state.node_name,
        "mode": state.mode,
        "version": version,
        "config": _config(state),
        "pools": _pools(state),
        "services": _services(state, plugins, announcements),
        "announcements": announcements,
        "members": _members(state),
        "workers": [_worker(ws, now) for ws in workers],
        "plugins": plugins,
    }


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


def _services(state: RoutedState, plugins: Mapping[str, Mapping[str, Any]],
              announcements: list[Any]) -> list[dict[str, Any]]:
    if state.allocation is None:
        return []
    result = state.allocation.result
    services = []
    for key in sorted(set(result.assignments) | set(result.pending)):
        name = str(key)
        announced: dict[str, list[str]] = {}
        for a in announcements:
            if isinstance(a, Mapping) and a.get("service") == name:
                nodes = announced.setdefault(str(a.get("protocol", "")), [])
                if a.get("node") not in nodes:
                    nodes.append(str(a.get("node")))
        elections = {}
        for protocol, payload in plugins.items():
            found = payload.get("elections")
            if isinstance(found, Mapping) and name in found:
                elections[protocol] = found[name]
            elif isinstance(found, (list, tuple)):
                # The layer2 plugin reports a list of {"service", "ip", "winner", ...}.
                for entry in found:
                    if isinstance(entry, Mapping) and entry.get("service") == name:
                        elections[protocol] = dict(entry)
                        break
        services.append({
            **service_document(result, key),
            "announced": announced,
            "elections": elections,
        })
    return services


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


def readiness(state: RoutedState, workers: Sequence[WorkerState], announcers: Sequence[str]) -> tuple[bool, str]:
    """Ready: a config is loaded, every worker RUNNING, every announcer holds its sockets."""
    if state.loaded is None:
        return False, "no valid config loaded yet"
    if state.allocation is None:
        return False, "waiting for the first allocation"
    for ws in workers:
        if ws.state is not State.RUNNING:
            return False, f"worker {ws.name} is {ws.state.value}"
    for worker in announcers:
        payload = state.statuses.get(worker)
        if payload is None:
            return False, f"announcer {worker} has not reported its status yet"
        if payload.get("sockets_ready") is False:
            return False, f"announcer {worker} does not hold its sockets yet"
    return True, "ok"
