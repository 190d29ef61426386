"""The resource kinds the fake API server serves, and how their URLs look.

Storage is keyed by (group, plural): one kind served under several versions
(metallb.io v1beta1 and v1beta2) is one set of objects, as in a real API server
with a storage version. `status` marks kinds whose status lives behind the
/status subresource (the main resource then ignores status changes).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    group: str  # "" for core
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool
    status: bool
    # Built-in lists omit kind/apiVersion on items; custom resources keep them.
    custom: bool = False

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


RESOURCES: tuple[Resource, ...] = (
    Resource(group="", versions=("v1",), plural="services", kind="Service", namespaced=True, status=True),
    Resource(group="", versions=("v1",), plural="pods", kind="Pod", namespaced=True, status=True),
    Resource(group="", versions=("v1",), plural="events", kind="Event", namespaced=True, status=False),
    Resource(group="", versions=("v1",), plural="secrets", kind="Secret", namespaced=True, status=False),
    Resource(group="", versions=("v1",), plural="nodes", kind="Node", namespaced=False, status=True),
    Resource(group="", versions=("v1",), plural="namespaces", kind="Namespace", namespaced=False, status=True),
    Resource(
        group="discovery.k8s.io",
        versions=("v1",),
        plural="endpointslices",
        kind="EndpointSlice",
        namespaced=True,
        status=False,
    ),
    Resource(
        group="coordination.k8s.io", versions=("v1",), plural="leases", kind="Lease", namespaced=True, status=False
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="ipaddresspools",
        kind="IPAddressPool",
        namespaced=True,
        status=True,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="l2advertisements",
        kind="L2Advertisement",
        namespaced=True,
        status=True,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1", "v1beta2"),
        plural="bgppeers",
        kind="BGPPeer",
        namespaced=True,
        status=False,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="bgpadvertisements",
        kind="BGPAdvertisement",
        namespaced=True,
        status=False,
        custom=True,
    ),
    Resource(
        group="admissionregistration.k8s.io",
        versions=("v1",),
        plural="validatingwebhookconfigurations",
        kind="ValidatingWebhookConfiguration",
        namespaced=False,
        status=False,
    ),
    Resource(
        group="apiextensions.k8s.io",
        versions=("v1",),
        plural="customresourcedefinitions",
        kind="CustomResourceDefinition",
        namespaced=False,
        status=True,
    ),
    Resource(group="apps", versions=("v1",), plural="deployments", kind="Deployment", namespaced=True, status=True),
    Resource(group="apps", versions=("v1",), plural="daemonsets", kind="DaemonSet", namespaced=True, status=True),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="bfdprofiles",
        kind="BFDProfile",
        namespaced=True,
        status=False,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="communities",
        kind="Community",
        namespaced=True,
        status=False,
        custom=True,
    ),
    Resource(
        group="metalloid.io",
        versions=("v1alpha1",),
        plural="announcerconfigs",
        kind="AnnouncerConfig",
        namespaced=True,
        status=False,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="servicel2statuses",
        kind="ServiceL2Status",
        namespaced=True,
        status=True,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="servicebgpstatuses",
        kind="ServiceBGPStatus",
        namespaced=True,
        status=True,
        custom=True,
    ),
    Resource(
        group="metallb.io",
        versions=("v1beta1",),
        plural="configurationstates",
        kind="ConfigurationState",
        namespaced=True,
        status=True,
        custom=True,
    ),
)


def find(group: str, version: str, plural: str) -> Resource | None:
    return next((r for r in RESOURCES if r.group == group and r.plural == plural and version in r.versions), None)


def by_kind(kind: str) -> Resource:
    return next(r for r in RESOURCES if r.kind == kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A parsed request path."""

    resource: Resource
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Target | None:
    """`/api/v1/namespaces/ns/services/x/status` → Target; None when not served."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # /namespaces/{ns}/{plural}... is namespaced; /namespaces[/{name}[/status]] is the Namespace kind.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] != "status":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    resource = find(group, version, rest[0])
    if resource is None or (namespace is not None and not resource.namespaced):
        return None
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else None
    if sub not in (None, "status"):
        return None
    return Target(resource=resource, version=version, namespace=namespace, name=name, subresource=sub)
