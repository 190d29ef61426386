"""What would block switching a cluster from MetalLB to metalloid: pure checks over listed objects.

`metalloid preflight` lists a live cluster (read-only) and hands the objects
here. Each check returns `Finding`s naming the object, what goes wrong after
the switch and the fix:

- a ValidatingWebhookConfiguration with rules on metallb.io: MetalLB's
  controller serves it; scaled to 0, every pool edit (and ArgoCD sync) fails
  with `failurePolicy: Fail`, or waits for its timeout with `Ignore`;
- a metallb.io CRD converting versions through a webhook (MetalLB's BGPPeer);
- MetalLB pods still running (two speakers answer ARP for one IP, and both
  want ports 7472 and 7946 on the node);
- metallb.io objects outside metalloid's namespace (ignored, as by MetalLB);
- fields metalloid's CRDs would prune (the API server drops fields its schema
  does not declare), and kinds they do not serve;
- what metalloid's config checks say: errors (the config would be rejected)
  and the fields it keeps but does not act on (`Config.inert_fields`).

No I/O here; the command does the listing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

METALLB_GROUP = "metallb.io"
CONFIG_KINDS = ("IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement", "BFDProfile", "Community")
# MetalLB's pods: app=metallb (its manifests) or app.kubernetes.io/name=metallb (its Helm chart).
METALLB_POD_SELECTORS = ("app=metallb", "app.kubernetes.io/name=metallb")


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    what: str  # Kind/[namespace/]name
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.what}: {self.problem}. Fix: {self.fix}"


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{obj.get('kind')}/{namespace + '/' if namespace else ''}{meta.get('name')}"


def webhooks(configurations: Iterable[Obj]) -> Iterator[Finding]:
    for configuration in configurations:
        name = (configuration.get("metadata") or {}).get("name")
        hooks = [h for h in configuration.get("webhooks") or []
                 if any({METALLB_GROUP, "*"} & set(r.get("apiGroups") or []) for r in h.get("rules") or [])]
        if not hooks:
            continue
        failing = sorted(h.get("name", "?") for h in hooks if (h.get("failurePolicy") or "Fail") == "Fail")
        service = ((hooks[0].get("clientConfig") or {}).get("service") or {})
        where = f"service {service.get('namespace')}/{service.get('name')}" if service else "its URL"
        effect = (f"{len(failing)} webhook(s) with failurePolicy Fail ({', '.join(failing)}) reject every create "
                  "and update of those metallb.io resources" if failing else
                  "every create and update of those metallb.io resources waits for the webhook's timeout")
        yield Finding(
            what=_name({**configuration, "kind": configuration.get("kind") or "ValidatingWebhookConfiguration"}),
            problem=f"validates metallb.io objects through {where}; once MetalLB's controller is scaled to 0 "
                    f"nothing answers there, and {effect} (pool edits, ArgoCD syncs)",
            fix=f"kubectl delete validatingwebhookconfiguration {name} (after scaling MetalLB's controller to 0)",
        )  # fmt: skip


def conversion_webhooks(crds: Iterable[Obj]) -> Iterator[Finding]:
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("group") == METALLB_GROUP and (spec.get("conversion") or {}).get("strategy") == "Webhook":
            name = (crd.get("metadata") or {}).get("name")
            yield Finding(
                what=f"CustomResourceDefinition/{name}",
                problem="converts between its versions through MetalLB's webhook; with MetalLB's controller gone, "
                        "reading these objects at the other version fails",
                fix="apply metalloid's CRDs (kubectl apply -k deploy/ or the CRDs alone): they need no conversion "
                    "webhook",
            )  # fmt: skip


def metallb_pods(pods: Iterable[Obj]) -> Iterator[Finding]:
    seen: set[str] = set()
    for pod in pods:
        name = _name({**pod, "kind": "Pod"})
        if name in seen or (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
            continue
        seen.add(name)
        labels = (pod.get("metadata") or {}).get("labels") or {}
        component = labels.get("component") or labels.get("app.kubernetes.io/component") or "component"
        yield Finding(
            what=name,
            problem=f"MetalLB's {component} is still running; beside metalloid's speakers two nodes answer ARP for "
                    "one IP, and both want ports 7472 and 7946 on the node",
            fix="scale MetalLB's controller Deployment to 0 and delete its speaker DaemonSet (or the Helm release)",
        )  # fmt: skip


def outside_namespace(objects: Iterable[Obj], namespace: str) -> Iterator[Finding]:
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") in CONFIG_KINDS and meta.get("namespace") != namespace:
            yield Finding(
                what=_name(obj),
                problem=f"is outside metalloid's namespace {namespace}; metalloid (like MetalLB) reads its "
                        "configuration there only, so this object is ignored",
                fix=f"move it to {namespace} (or run metalloid with --namespace {meta.get('namespace')})",
            )  # fmt: skip


def unknown_fields(schema: Mapping[str, Any], value: Any, path: str) -> Iterator[str]:
    """Paths under `value` the structural `schema` does not declare (what the API server prunes)."""
    if not isinstance(schema, Mapping) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            child = f"{path}.{key}"
            if properties is not None and key in properties:
                yield from unknown_fields(properties[key], item, child)
            elif isinstance(extra, Mapping):
                yield from unknown_fields(extra, item, child)
            elif properties is not None or extra is False:
                yield child
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from unknown_fields(schema["items"], item, f"{path}[{index}]")


def crd_schemas(crds: Iterable[Obj]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(kind, version) → openAPIV3Schema, from CRD documents (metalloid's deploy/base/crds)."""
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    for crd in crds:
        spec = crd.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if kind and schema:
                found[(str(kind), str(version.get("name")))] = schema
    return found


def pruned(objects: Iterable[Obj], schemas: Mapping[tuple[str, str], Mapping[str, Any]]) -> Iterator[Finding]:
    served = {kind for kind, _ in schemas}
    for obj in objects:
        kind = str(obj.get("kind"))
        version = str(obj.get("apiVersion") or "").partition("/")[2]
        schema = schemas.get((kind, version))
        if schema is None:
            missing = f"version {version} of {kind}" if kind in served else f"the kind {kind}"
            yield Finding(what=_name(obj), problem=f"metalloid's CRDs do not serve {missing}",
                          fix="keep MetalLB for it, or remove the object")  # fmt: skip
            continue
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
        paths = list(unknown_fields(schema, body, ""))
        if paths:
            listed = ", ".join(p.lstrip(".") for p in paths)
            yield Finding(what=_name(obj),
                          problem=f"metalloid's CRD would prune {listed} (the field is not in its schema)",
                          fix="remove the field, or keep MetalLB until metalloid supports it")  # fmt: skip


def config_verdict(errors: Iterable[str], inert: Iterable[str]) -> Iterator[Finding]:
    """metalloid's own checks on the cluster's configuration (`Kind/namespace/name: message` lines).

    `errors` would reject the configuration; `inert` are the fields metalloid
    keeps but does not act on (the objects are honoured without them, so
    behaviour changes where MetalLB did act on them).
    """
    for line in errors:
        what, _, message = line.partition(": ")
        yield Finding(what=what, problem=f"metalloid rejects it: {message}", fix="correct it (see metalloid check)")
    for line in inert:
        what, _, message = line.partition(": ")
        yield Finding(what=what, problem=message,
                      fix="remove the field, or keep MetalLB while you depend on it")  # fmt: skip
