"""Speaker pods as membership peers: Node objects whose addresses are the speakers'.

In Kubernetes mode the membership worker sends heartbeats to `config.nodes`'
addresses, so the watcher rewrites each Node's addresses to the hostIP (or
podIP) of the speaker pod running on it. A node without a running speaker pod
has no address: nothing there can answer, so it is no peer. Pure dict work,
before `parse_objects`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

SPEAKER_SELECTOR = "app=metalloid,component=speaker"


def speaker_addresses(pods: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """node name → the address of the running speaker pod on it."""
    found: dict[str, str] = {}
    for pod in pods:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        node = spec.get("nodeName")
        address = status.get("hostIP") or status.get("podIP")
        if not node or not address or status.get("phase", "Running") != "Running":
            continue
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue  # terminating: it is leaving the membership
        found[node] = address
    return found


def nodes_with_speaker_addresses(nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """Copies of the Node objects with `status.addresses` = [InternalIP of the speaker pod]."""
    addresses = speaker_addresses(pods)
    out: list[Obj] = []
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        copied = copy.deepcopy(dict(node))
        status = copied.setdefault("status", {})
        address = addresses.get(name)
        status["addresses"] = [{"type": "InternalIP", "address": address}] if address else []
        out.append(copied)
    return out
