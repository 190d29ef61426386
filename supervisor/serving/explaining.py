"""Why a Service has its IP, or none, and why a node announces it, or none does.

`metalloid explain` turns one Service's entry of a /status document (from a
live node, or computed offline by `supervisor.serving.snapshot`) into an
explanation a newcomer can act on: the allocator's reason with a hint of the
fix, MetalLB's ranking with each excluded node's reason, or the missing
advertisement. Pure: the same document always gives the same explanation, as
a JSON-ready dict (`-o json`) and as text.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

# (pattern in the allocator's pending reason, hint). First match wins.
_PENDING_HINTS: tuple[tuple[str, str], ...] = (
    (r"in no IPAddressPool|is in no pool|not in any pool",
     "add {ips} to an IPAddressPool's spec.addresses (or create a pool that covers it), or remove "
     "spec.loadBalancerIP / the metallb.io/loadBalancerIPs annotation so the Service gets a free IP automatically"),
    (r"no available IPs",
     "the pool is full: add addresses to its spec.addresses, add another IPAddressPool, or delete a Service "
     "that holds an IP you no longer need"),
    (r"pool \S+ does not exist",
     "fix the metallb.io/address-pool annotation, or create the IPAddressPool it names"),
    (r"no IPAddressPool exists",
     "create an IPAddressPool (kind: IPAddressPool, spec.addresses) that covers the Service"),
    (r"serviceAllocation|namespace",
     "the pools' spec.serviceAllocation (namespaces, namespaceSelectors, serviceSelectors) keeps this Service "
     "out; widen it or label the Service or its namespace to match"),
    (r"DualStack|IPv4|IPv6|addresses",
     "the pools lack the address family the Service needs (spec.ipFamilies / ipFamilyPolicy): add addresses "
     "of that family to a pool"),
    (r"held by|in use|shared|allow-shared-ip|conflict",
     "another Service holds that IP: give both the same metallb.io/allow-shared-ip key with ports that do not "
     "overlap, or ask for another IP"),
)

_PROBLEM_HINT = ("the Service's own spec is invalid: fix it as the reason says (`metalloid check FILE` prints every "
                 "error with its file and line); the other Services are not affected")

_REASON_HINTS: tuple[tuple[str, str], ...] = (
    ("not alive", "start metalloid on that node, or check that heartbeats reach it (UDP port, membership key)"),
    ("exclude-from-external-load-balancers", "remove that label from the node if it should announce"),
    ("NetworkUnavailable", "fix the node's network (its CNI reports NetworkUnavailable)"),
    ("nodeSelectors", "the L2Advertisement's spec.nodeSelectors do not match this node's labels"),
    ("externalTrafficPolicy", "run a ready endpoint of the Service on that node, or use externalTrafficPolicy: "
                              "Cluster"),
)


def find_service(status: dict[str, Any], wanted: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The service entry for `ns/name` (or `name` in default), else close names to suggest."""
    namespace, _, name = wanted.partition("/")
    if not name:
        namespace, name = "default", namespace
    services = status.get("services") or []
    for service in services:
        if service.get("namespace") == namespace and service.get("name") == name:
            return service, []
    keys = [f"{s.get('namespace')}/{s.get('name')}" for s in services]
    close = difflib.get_close_matches(f"{namespace}/{name}", keys, n=5, cutoff=0.5)
    close += [k for k in keys if k.endswith("/" + name) and k not in close]
    return None, close


def explain(
    status: dict[str, Any], service: dict[str, Any], *, source: str, note: str | None = None
) -> dict[str, Any]:
    """The explanation of one service entry of `status`, JSON-ready."""
    key = f"{service.get('namespace')}/{service.get('name')}"
    ip = _explain_ip(status, service)
    return {
        "service": key,
        "source": source,
        "ip": ip,
        "announcement": [] if ip["state"] == "pending" else _explain_announcement(status, service),
        "not_announced": _why_not_announced(status, service, ip),
        "note": note,
    }


def _explain_ip(status: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    ips: list[str] = service.get("ips") or []
    pool = service.get("pool")
    requested: dict[str, Any] = service.get("requested") or {}
    problem = service.get("problem")
    if service.get("pending") or not ips:
        reason = service.get("pending") or "the allocator has not assigned it an IP yet"
        hint = (_PROBLEM_HINT if problem else _pending_hint(status, reason))
        return {"state": "pending", "ips": [], "pool": None, "why": reason, "hint": hint}
    asked = requested.get("ips") or []
    if asked:
        why = (f"it asks for {', '.join(asked)} (spec.loadBalancerIP or the metallb.io/loadBalancerIPs "
               f"annotation), and pool {pool} contains it")
    elif requested.get("pool"):
        why = (f"it asks for pool {requested['pool']} (metallb.io/address-pool annotation); the allocator took "
               "the lowest free address there")
    elif requested.get("status_ips") and set(requested["status_ips"]) == set(ips):
        why = ("it already held it (status.loadBalancer.ingress), and a Service keeps its IP as long as a pool "
               "still contains it")
    elif requested:
        why = ("it asked for nothing, so the allocator took the lowest free address of the first pool (by "
               "serviceAllocation priority) that has autoAssign: true and allows this Service")
    else:
        why = f"the allocator assigned it from pool {pool} (`metalloid plan FILE` shows every assignment)"
    sharing = requested.get("sharing_key")
    if sharing:
        others = [f"{s['namespace']}/{s['name']}" for s in status.get("services") or []
                  if s is not service and set(s.get("ips") or []) & set(ips)]
        why += (f"; it shares the IP under metallb.io/allow-shared-ip {sharing!r}"
                + (f" with {', '.join(others)}" if others else ""))
    if problem:
        why += (f"; its spec is invalid now ({problem}), so, as in MetalLB, it keeps the IP it held and gets no "
                "other until the spec is fixed")
        return {"state": "assigned", "ips": ips, "pool": pool, "why": why, "hint": _PROBLEM_HINT}
    return {"state": "assigned", "ips": ips, "pool": pool, "why": why, "hint": None}


def _pending_hint(status: dict[str, Any], reason: str) -> str:
    ips = re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|\b[0-9a-fA-F:]*:[0-9a-fA-F:]+\b", reason)
    pool_ranges = {p["name"]: p.get("addresses") or [] for p in status.get("pools") or []}
    outside = [ip for ip in ips if _valid_ip(ip) and not _in_any_pool(ip, pool_ranges)]
    for pattern, hint in _PENDING_HINTS:
        if re.search(pattern, reason):
            return hint.format(ips=", ".join(outside) or "the requested IP")
    return "run `metalloid plan FILE` to see every Service's assignment and `metalloid check FILE` for mistakes"


def _explain_announcement(status: dict[str, Any], service: dict[str, Any]) -> list[dict[str, Any]]:
    key = f"{service.get('namespace')}/{service.get('name')}"
    ip = (service.get("ips") or ["?"])[0]
    elections: dict[str, Any] = service.get("elections") or {}
    announced: dict[str, list[str]] = service.get("announced") or {}
    interfaces = {(a.get("protocol"), a.get("node")): a.get("interfaces") or []
                  for a in status.get("announcements") or [] if a.get("service") == key}
    # Shown only when no protocol announces it: a layer 2 Service is "not advertised" by BGP too.
    not_advertised = {} if any(announced.values()) else _not_advertised(status, key)
    out: list[dict[str, Any]] = []
    for protocol in sorted(set(elections) | set(announced) | set(not_advertised)):
        election: dict[str, Any] = elections.get(protocol) or {}
        nodes = announced.get(protocol) or []
        ranking = election.get("ranking") or []
        excluded = [[str(n), str(r)] for n, r in election.get("excluded") or []]
        entry: dict[str, Any] = {"protocol": protocol, "nodes": nodes, "ranking": ranking, "excluded": excluded,
                                 "interfaces": {n: interfaces.get((protocol, n), []) for n in nodes}}
        winner = election.get("winner")
        peers = _peers(status, protocol, key)
        if peers:
            entry["peers"] = peers
        if protocol in not_advertised and not nodes:
            # The BGP announcer's own reason (no BGPAdvertisement selects it, nodeSelectors leave this node out).
            entry["state"] = "not-advertised"
            entry["why"] = f"{status.get('node')} does not advertise it: {not_advertised[protocol]}"
            entry["hints"] = []
        elif election.get("not_served") and not nodes:
            # A reason about the Service itself: no serving endpoint, no advertisement selecting it, ...
            reason = str(election["not_served"])
            entry["state"] = "not-served"
            entry["why"] = f"no node announces it: {reason}"
            # The endpoint reasons carry no fix of their own; the others do.
            entry["hints"] = [_not_served_hint(key, status)] if "endpoint" in reason.lower() else []
        elif election and not ranking and not excluded and not nodes:
            entry["state"] = "no-candidate"
            entry["why"], hint = _no_nodes(status)
            entry["hints"] = [hint]
        elif protocol == "layer2" and election and not ranking:
            entry["state"] = "no-candidate"
            entry["why"] = "no node may announce it: every node is excluded (below)"
            entry["hints"] = sorted({hint for _, reason in excluded for needle, hint in _REASON_HINTS
                                     if needle in reason})
        elif protocol == "layer2" and winner:
            entry["state"] = "announced" if winner in nodes else "elected"
            entry["why"] = (f"layer 2 mode has exactly one node answer ARP/NDP for {ip}. Every node ranks the "
                            f"candidates by sha256(\"<node>#{ip}\"), MetalLB's rule, so all agree without a "
                            f"leader; {winner} is first")
            if winner not in nodes:
                entry["why"] += (f", but {status.get('node')} has not seen it announce yet: a node reports only "
                                 f"its own announcements, so ask {winner} (--endpoint http://<{winner}>:7472) "
                                 "to confirm")
        elif nodes:
            entry["state"] = "announced"
            entry["why"] = ("BGP mode: every eligible node announces it and the router spreads the traffic"
                            if protocol == "bgp" else f"the {protocol} announcer chose these nodes")
            if peers and not any(p["advertised"] for p in peers):
                entry["why"] += (f"; but no session of {status.get('node')} to a peer it goes to is established, so "
                                 "no router has the route from this node yet")
                entry["hints"] = [_SESSION_HINT]
        else:
            entry["state"] = "not-announced"
            entry["why"] = f"the {protocol} announcer reports no node for it"
        out.append(entry)
    return out


_SESSION_HINT = ("check each BGPPeer's peerAddress, peerASN, myASN (and password) against the router's configuration "
                 "and that the router accepts this node as a neighbor; `metalloid status` lists the sessions and "
                 "their state")


def _plugin_payloads(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    plugins = status.get("plugins") or {}
    return {str(p): v for p, v in plugins.items() if isinstance(v, dict)} if isinstance(plugins, dict) else {}


def _not_advertised(status: dict[str, Any], key: str) -> dict[str, str]:
    """protocol → why that announcer (BGP) does not advertise `key` from this node, from its "not_advertised"."""
    found: dict[str, str] = {}
    for protocol, payload in _plugin_payloads(status).items():
        for item in payload.get("not_advertised") or []:
            if isinstance(item, dict) and item.get("service") == key:
                found.setdefault(protocol, str(item.get("reason")))
    return found


def _peers(status: dict[str, Any], protocol: str, key: str) -> list[dict[str, Any]]:
    """This node's routes for `key` per peer (BGP): the session's state and whether the route is advertised.

    From the announcer's "sessions" and "routes" (a node reports only its own).
    """
    payload = _plugin_payloads(status).get(protocol) or {}
    sessions = {s.get("peer"): s for s in payload.get("sessions") or [] if isinstance(s, dict)}
    out: list[dict[str, Any]] = []
    for route in payload.get("routes") or []:
        if not isinstance(route, dict) or key not in (route.get("services") or []):
            continue
        session = sessions.get(route.get("peer")) or {}
        out.append({"peer": route.get("peer"), "address": session.get("address"),
                    "state": session.get("state") or "unknown", "prefix": route.get("prefix"),
                    "advertised": bool(route.get("advertised")), "bfd_profile": session.get("bfd_profile")})
    return sorted(out, key=lambda p: (str(p["peer"]), str(p["prefix"])))


def _not_served_hint(key: str, status: dict[str, Any]) -> str:
    namespace, _, name = key.partition("/")
    if status.get("mode") == "kubernetes":
        return (f"check the pods behind it: `kubectl -n {namespace} get endpointslices "
                f"-l kubernetes.io/service-name={name}` must list an endpoint that is ready or serving "
                "(its selector must match running, ready pods)")
    return (f"the config lists EndpointSlices for {key} (label kubernetes.io/service-name: {name}) and none of "
            "their endpoints is ready or serving: mark one ready, or remove the EndpointSlices if the host "
            "itself serves the IP (a Service without any EndpointSlice in the file is announced)")


def _no_nodes(status: dict[str, Any]) -> tuple[str, str]:
    """Why and fix when the election had no node at all to consider, not even an excluded one."""
    if status.get("mode") == "kubernetes":
        return (f"no node may announce it: {status.get('node')} knows no Node objects, so no node is known to "
                "announce it (in Kubernetes the nodes come from the API)",
                "check that the speaker may list and watch Nodes (its ClusterRole) and that the API lists them")
    return ("no node may announce it: the config lists no Node objects, so no node is known to announce it "
            "(standalone mode takes membership and the election from the Node objects in the config; in "
            "Kubernetes the nodes come from the API)",
            "add a Node object (kind: Node, metadata.name as given to `metalloid run --node`, an InternalIP in "
            "status.addresses) for every host that runs metalloid")


def _why_not_announced(status: dict[str, Any], service: dict[str, Any], ip: dict[str, Any]) -> str | None:
    if ip["state"] == "pending":
        return "a Service without an IP is not announced"
    key = f"{service.get('namespace')}/{service.get('name')}"
    if service.get("elections") or service.get("announced") or _not_advertised(status, key):
        return None
    pool = service.get("pool")
    ads = service.get("advertisements")
    fix = (f"add an L2Advertisement with spec.ipAddressPools: [{pool}] (an advertisement that names no pool and no "
           "selector covers every pool)")
    if isinstance(ads, dict) and not any(ads.values()):
        return f"no L2Advertisement or BGPAdvertisement covers pool {pool}: {fix}"
    return (f"no announcer on {status.get('node')} reports it; most often no L2Advertisement covers pool {pool} "
            f"(check spec.ipAddressPools and ipAddressPoolSelectors): {fix}")


def render_text(explanation: dict[str, Any]) -> str:
    lines = [f"Service {explanation['service']}   ({explanation['source']})", ""]
    ip = explanation["ip"]
    if ip["state"] == "pending":
        lines += ["IP: none, it is pending.", f"  Why: {ip['why']}.", f"  Fix: {ip['hint']}."]
    else:
        lines += [f"IP: {', '.join(ip['ips'])} from pool {ip['pool']}.", f"  Why: {ip['why']}."]
        if ip.get("hint"):
            lines.append(f"  Fix: {ip['hint']}.")
    lines.append("")
    if explanation["not_announced"]:
        lines.append(f"Announced: no. {explanation['not_announced'][0].upper()}{explanation['not_announced'][1:]}.")
    for entry in explanation["announcement"]:
        lines += _render_announcement(entry)
    if explanation.get("note"):
        # Each announcement block already ends with a blank line.
        if lines[-1]:
            lines.append("")
        lines.append(f"Note: {explanation['note']}.")
    return "\n".join(lines).rstrip() + "\n"


def _render_announcement(entry: dict[str, Any]) -> list[str]:
    protocol, state = entry["protocol"], entry["state"]
    nodes = ", ".join(
        f"{n} (on {', '.join(entry['interfaces'][n])})" if entry["interfaces"].get(n) else n for n in entry["nodes"]
    )
    heading = {
        "announced": f"Announced ({protocol}): by {nodes}.",
        "elected": f"Announced ({protocol}): {entry['ranking'][0] if entry['ranking'] else '?'} should announce it.",
        "no-candidate": f"Announced ({protocol}): no.",
        "not-advertised": f"Announced ({protocol}): not from this node.",
    }.get(state, f"Announced ({protocol}): no.")
    lines = [heading, f"  Why: {entry['why']}."]
    if entry["ranking"]:
        lines.append("  Ranking:")
        lines += [f"    {i}. {n}{'   <- announces' if i == 1 and protocol == 'layer2' else ''}"
                  for i, n in enumerate(entry["ranking"], start=1)]
    if entry["excluded"]:
        lines.append("  Not candidates:")
        lines += [f"    {n}: {r}" for n, r in entry["excluded"]]
    if entry.get("peers"):
        lines.append("  Peers (this node's sessions):")
        lines += [f"    {p['peer']} ({p['address']}): session {p['state']}"
                  + (f", BFD profile {p['bfd_profile']}" if p.get("bfd_profile") else "")
                  + f"; {p['prefix']} " + ("advertised" if p["advertised"] else "NOT advertised (the session is not "
                                                                               "established)")
                  for p in entry["peers"]]
    lines += [f"  Fix: {hint}." for hint in entry.get("hints", [])]
    lines.append("")
    return lines


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in_any_pool(ip_text: str, pools: dict[str, list[str]]) -> bool:
    ip = ipaddress.ip_address(ip_text)
    for ranges in pools.values():
        for text in ranges:
            first, _, last = text.partition("-")
            try:
                if last:
                    low, high = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
                    if low.version == ip.version and int(low) <= int(ip) <= int(high):
                        return True
                elif ip in ipaddress.ip_network(text.strip(), strict=False):
                    return True
            except ValueError:
                continue
    return False
