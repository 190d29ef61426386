"""`metalloid status`: what a running node knows, printed the way `kubectl get` prints it.

Reads the node's /status over HTTP (nothing else: no config file, no root) and
prints services, pools, members, workers and the config's state, or the raw
document with `-o json|yaml`. Rendering is a pure function of the document so
tests need no server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from supervisor.serving.client import StatusUnavailable, add_client_arguments, client_token, fetch_status
from supervisor.serving.tables import NONE, human_duration, render_table

HELP = "show a running node's services, pools, members and workers (reads /status)"
DESCRIPTION = """\
Show what a running metalloid node knows: which Service has which IP from which
pool and which node announces it, pool usage per address family, the members
this node sees and the state of its worker processes. Reads GET /status from
the node's HTTP port (--metrics-port of `metalloid run`, default 7472).

  metalloid status
  metalloid status --endpoint http://10.0.10.2:7472 -o yaml
  metalloid status --watch
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                        help="output format (default: table)")
    parser.add_argument("-w", "--watch", action="store_true", help="print again every --interval seconds")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between prints with --watch")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node (default: 5)")


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C ends --watch; not an error
        return 0


def _run(args: argparse.Namespace) -> int:
    while True:
        try:
            document = fetch_status(args.endpoint, timeout=args.timeout, token=client_token(args.auth_token_file),
                                    verify=not args.insecure_skip_tls_verify)
            text = format_status(document, args.output)
            code = 0
        except StatusUnavailable as exc:
            text, code = f"metalloid status: {exc}\n", 1
        if args.watch and sys.stdout.isatty():
            sys.stdout.write("\x1b[H\x1b[2J")
        (sys.stdout if code == 0 else sys.stderr).write(text)
        sys.stdout.flush()
        if not args.watch:
            return code
        time.sleep(args.interval)


def format_status(status: dict[str, Any], output: str = "table") -> str:
    if output == "json":
        return json.dumps(status, indent=2) + "\n"
    if output == "yaml":
        # deferred: +0.7 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
        import yaml

        return str(yaml.safe_dump(status, sort_keys=False, default_flow_style=False))
    return render_tables(status)


def render_tables(status: dict[str, Any]) -> str:
    parts = [_header(status)]
    services = status.get("services") or []
    parts.append("SERVICES\n" + render_table(
        ["NAMESPACE", "NAME", "EXTERNAL-IP", "POOL", "ANNOUNCED-BY", "STATUS"],
        [_service_row(s, str(status.get("node", ""))) for s in services],
    ) if services else "SERVICES: none of type LoadBalancer\n")
    pending = [s for s in services if s.get("pending")]
    if pending:
        parts.append("".join(
            f"{s['namespace']}/{s['name']} is pending: {s['pending']}\n"
            f"  (metalloid explain {s['namespace']}/{s['name']})\n" for s in pending))
    pools = status.get("pools") or []
    if pools:
        parts.append("POOLS\n" + _pool_table(pools))
    members = status.get("members") or []
    if members:
        parts.append("MEMBERS\n" + render_table(["NAME", "ALIVE", "LAST-HEARD", "CONSISTENT"],
                                                [_member_row(m) for m in members]))
    announcers = status.get("announcers") or []
    if announcers:
        parts.append("ANNOUNCERS\n" + render_table(["PROTOCOL", "STATE", "READY", "HANG-TIMEOUT", "WHY"],
                                                   [_announcer_row(a) for a in announcers]))
    sessions = _bgp_sessions(status)
    if sessions:
        parts.append("BGP SESSIONS" + _frr_line(status) + "\n" + render_table(
            ["PEER", "ADDRESS", "VRF", "MY-ASN", "PEER-ASN", "STATE", "BFD", "PREFIXES-SENT", "ROUTES"], sessions))
    for problem in status.get("plugin_errors") or []:
        hook = f" hook {problem.get('hook')}" if problem.get("hook") else ""
        parts.append(f"plugin error: {problem.get('plugin')}{hook}: {problem.get('reason')}\n")
    workers = status.get("workers") or []
    if workers:
        parts.append("WORKERS\n" + render_table(["NAME", "STATE", "PID", "RESTARTS", "UPTIME", "LAST-ERROR"],
                                                [_worker_row(w) for w in workers]))
    return "\n".join(parts)


def _header(status: dict[str, Any]) -> str:
    config = status.get("config") or {}
    lines = [
        f"NODE: {status.get('node', NONE)}   MODE: {status.get('mode', NONE)}   VERSION: {status.get('version', NONE)}",
    ]
    if not config.get("loaded", False):
        state = "NOT LOADED"
    elif config.get("stale"):
        state = "STALE (the latest change was rejected; the last good config is in force)"
    else:
        state = "loaded"
    lines.append(f"CONFIG: {config.get('origin', NONE)}   GENERATION: {config.get('generation', NONE)}   "
                 f"STATE: {state}")
    lines += [f"  error: {e}" for e in config.get("errors") or []]
    lines += [f"  error (only this object is affected): {e}" for e in config.get("object_errors") or []]
    # Diagnostics already say "warning:" after their location; only bare strings need the prefix.
    lines += [f"  {w}" if ": warning: " in w else f"  warning: {w}" for w in config.get("warnings") or []]
    return "\n".join(lines) + "\n"


def _service_row(service: dict[str, Any], this_node: str = "") -> list[object]:
    ips = service.get("ips") or []
    announced: dict[str, list[str]] = service.get("announced") or {}
    by = ", ".join(f"{node} ({protocol})" for protocol, nodes in sorted(announced.items()) for node in nodes)
    # A node sees only its own announcements; for the others it knows whom the
    # election chose ("Elected": ask that node to confirm it announces).
    elsewhere = [(protocol, str(e["winner"])) for protocol, e in sorted((service.get("elections") or {}).items())
                 if isinstance(e, dict) and e.get("winner") and e.get("winner") != this_node
                 and protocol not in announced]
    if service.get("pending"):
        state = "Pending"
    elif by:
        state = "Announced"
    elif elsewhere:
        by = ", ".join(f"{node} ({protocol})" for protocol, node in elsewhere)
        state = "Elected"
    elif any(isinstance(e, dict) and e.get("not_served") for e in (service.get("elections") or {}).values()):
        state = "NoEndpoints"  # MetalLB announces nothing without a serving endpoint; `explain` says more
    else:
        state = "NotAnnounced"
    return [service.get("namespace"), service.get("name"), ",".join(ips) if ips else "<pending>",
            service.get("pool"), by, state]


def _bgp_sessions(status: dict[str, Any]) -> list[list[object]]:
    """One row per BGP session of this node, from each announcer that reports "sessions" (the bgp plugin).

    ROUTES counts the routes this node should advertise on the session (its
    plan); PREFIXES-SENT is what FRR says it sent, so the two differ while a
    session is down or a reload is on its way.
    """
    rows: list[list[object]] = []
    plugins = status.get("plugins") or {}
    for _, payload in sorted(plugins.items()) if isinstance(plugins, dict) else ():
        if not isinstance(payload, dict):
            continue
        routes = [r for r in payload.get("routes") or [] if isinstance(r, dict)]
        for session in payload.get("sessions") or []:
            if not isinstance(session, dict):
                continue
            port = session.get("port")
            address = f"{session.get('address')}" + (f":{port}" if port not in (None, 179) else "")
            rows.append([session.get("peer"), address, session.get("vrf") or "default", session.get("my_asn"),
                         session.get("peer_asn"), session.get("state"), session.get("bfd_profile"),
                         session.get("prefixes_sent", 0),
                         sum(1 for r in routes if r.get("peer") == session.get("peer"))])
    return rows


def _frr_line(status: dict[str, Any]) -> str:
    """`   FRR: managed, in sync, 3 reloads` (or its error) when the announcer reports its FRR."""
    plugins = status.get("plugins") or {}
    frr = next((p.get("frr") for p in plugins.values() if isinstance(p, dict) and isinstance(p.get("frr"), dict)),
               None) if isinstance(plugins, dict) else None
    if frr is None:
        return ""
    words = ["managed" if frr.get("managed") else f"not managed (vtysh socket dir {frr.get('run_dir')})",
             "in sync" if frr.get("in_sync") else "NOT in sync", f"{frr.get('reloads', 0)} reloads"]
    if frr.get("restarts"):
        words.append(f"{frr['restarts']} restarts")
    if frr.get("error"):
        words.append(f"error: {frr['error']}")
    return "   FRR: " + ", ".join(words)


def _pool_table(pools: list[dict[str, Any]]) -> str:
    families = [f for f in ("v4", "v6") if any(p.get(f"total_{f}") for p in pools)] or ["v4"]
    headers = ["NAME", "ADDRESSES"]
    for family in families:
        tag = "IPV4" if family == "v4" else "IPV6"
        headers += [f"{tag}-TOTAL", f"{tag}-ASSIGNED", f"{tag}-AVAILABLE"]
    rows: list[list[object]] = []
    for pool in pools:
        row: list[object] = [pool.get("name"), ",".join(pool.get("addresses") or [])]
        for family in families:
            row += [pool.get(f"total_{family}", 0), pool.get(f"assigned_{family}", 0),
                    pool.get(f"available_{family}", 0)]
        rows.append(row)
    return render_table(headers, rows)


def _member_row(member: dict[str, Any]) -> list[object]:
    heard = member.get("last_heard_seconds")
    mismatch = member.get("digest_mismatch") or []
    consistent = "yes" if not mismatch else "NO: " + ", ".join(str(m) for m in mismatch)
    alive = "yes" if member.get("alive") else "NO"
    # Why a peer counts as alive when it is not by heartbeat (e.g. the
    # Kubernetes-readiness fallback while the heartbeat port is blocked).
    basis = member.get("basis")
    if member.get("alive") and basis and basis != "heartbeat":
        alive += f" ({basis})"
    return [member.get("name"), alive, "<never>" if heard is None else human_duration(heard) + " ago", consistent]


def _announcer_row(announcer: dict[str, Any]) -> list[object]:
    state = announcer.get("state") if announcer.get("enabled") else "DISABLED"
    if announcer.get("state") == "FAILED" and announcer.get("last_error"):
        state = f"FAILED ({announcer.get('last_error')})"
    timeout = announcer.get("hang_timeout_seconds")
    return [announcer.get("protocol"), state, "yes" if announcer.get("ready") else "no",
            None if timeout is None else f"{timeout:g}s", announcer.get("reason")]


def _worker_row(worker: dict[str, Any]) -> list[object]:
    uptime = worker.get("uptime_seconds")
    return [worker.get("name"), worker.get("state"), worker.get("pid"), worker.get("restarts", 0),
            None if uptime is None else human_duration(uptime), worker.get("last_error")]
