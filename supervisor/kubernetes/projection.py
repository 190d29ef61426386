"""What the watch cache keeps of an API object: the fields metalloid reads, nothing else.

A watcher holds every Service, EndpointSlice, Node and (a speaker) speaker Pod
of the cluster for as long as it runs. Real objects carry much that metalloid
never reads: `managedFields`, kubectl's last-applied-configuration annotation
(a second copy of the whole object), a Node's `status.images` and
`nodeInfo`, a Pod's containers, an EndpointSlice's `targetRef`, `zone` and
`ports`. `project` keeps, per kind, the fields its readers need, as a new
dict taken as the object arrives; the API's dict is dropped with the response.

The readers, which a field must survive for:

- `config.parsing` and `config.core_kinds` (`parse_objects`): every kind's
  metadata name, namespace, labels and annotations; a Service's whole spec
  and status; an EndpointSlice's addressType and its endpoints' addresses,
  nodeName and conditions (ready and serving: MetalLB's
  serviceHasActiveEndpoints, externalTrafficPolicy Local); a Node's labels,
  status.addresses and conditions (type and status);
- `kubernetes.events` (Events about a Service, a Node or a MetalLB object):
  metadata uid and resourceVersion, the involvedObject;
- `kubernetes.statuswriter` and `families` (the controller's Service status,
  `metallb.io/ip-allocated-from-pool`, deprecated annotations, dual-stack
  families from spec.clusterIPs): a Service's whole spec, status, annotations
  and resourceVersion; an IPAddressPool's status;
- `kubernetes.peers` and the status writers' owner reference (speaker Pods):
  spec.nodeName, status.phase, hostIP and podIP, metadata.deletionTimestamp
  and uid.

MetalLB's and metalloid's own kinds are kept whole (minus managedFields and
the last-applied annotation): they are few, and their parsers report unknown
spec fields, so every field must reach them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

from supervisor.kubernetes import kinds
from supervisor.kubernetes.kinds import Kind

Obj = dict[str, Any]

# kubectl apply's copy of the whole object as last applied: as large as the rest together.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# A field tree: a key maps to ALL (the value as it is) or to the tree of the
# fields kept inside it; a list's items (mappings) are each projected by it.
ALL = True
Tree = Mapping[str, Union[bool, "Tree"]]

# uid and resourceVersion: the involvedObject of an Event (about a Service or a Node), the owner
# reference to a speaker Pod. EndpointSlices and Namespaces are never written about.
_OBJECT_META: Tree = {"name": ALL, "namespace": ALL, "uid": ALL, "resourceVersion": ALL, "labels": ALL,
                      "annotations": ALL, "deletionTimestamp": ALL}
_READ_META: Tree = {"name": ALL, "namespace": ALL, "labels": ALL, "annotations": ALL}

_TREES: dict[str, Tree] = {
    kinds.SERVICE.kind: {"metadata": _OBJECT_META, "spec": ALL, "status": ALL},
    kinds.ENDPOINT_SLICE.kind: {
        "metadata": _READ_META,
        "addressType": ALL,
        "endpoints": {"addresses": ALL, "nodeName": ALL, "conditions": ALL},
    },
    kinds.NODE.kind: {
        "metadata": _OBJECT_META,
        "status": {"addresses": ALL, "conditions": {"type": ALL, "status": ALL}},
    },
    kinds.NAMESPACE.kind: {"metadata": _READ_META},
    kinds.POD.kind: {
        "metadata": _OBJECT_META,
        "spec": {"nodeName": ALL},
        "status": {"phase": ALL, "hostIP": ALL, "podIP": ALL},
    },
}


def project(kind: Kind, obj: Mapping[str, Any]) -> Obj:
    """The fields of `obj` metalloid reads (see the module docstring), with its kind and apiVersion."""
    if not isinstance(obj.get("metadata") or {}, Mapping):
        # Not an object we can key or read: the watch's crash path relists it (as before projecting).
        raise ValueError(f"{kind.kind} with metadata {type(obj.get('metadata')).__name__}, not an object")
    tree = _TREES.get(kind.kind)
    if tree is None:
        kept = dict(obj)
        meta = dict(kept.get("metadata") or {})
        meta.pop("managedFields", None)
        kept["metadata"] = meta
    else:
        kept = _pick(obj, tree)
        meta = kept.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    # List items of built-in kinds carry no kind/apiVersion; parse_objects needs them.
    kept["kind"], kept["apiVersion"] = kind.kind, kind.api_version
    return kept


def _pick(value: Mapping[str, Any], tree: Tree) -> Obj:
    out: Obj = {}
    for key, sub in tree.items():
        if key not in value:
            continue
        found = value[key]
        if sub is ALL or isinstance(sub, bool):
            out[key] = found
        elif isinstance(found, Mapping):
            out[key] = _pick(found, sub)
        elif isinstance(found, list):
            out[key] = [_pick(item, sub) if isinstance(item, Mapping) else item for item in found]
        else:
            out[key] = found  # not the shape expected: the parser reports it as it would have
    return out
