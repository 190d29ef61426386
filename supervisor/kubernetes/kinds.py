"""The API resources metalloid reads and writes, and how to spell their URLs.

One table, so the watcher, the status writer and the lease loop agree on
groups, versions and plurals. BGPPeer is read as v1beta2 (MetalLB's storage
version); everything else of metallb.io as v1beta1, as the runbook writes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path; `namespace=None` on a namespaced kind means all namespaces."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


SERVICE = Kind(kind="Service", group="", version="v1", plural="services", namespaced=True)
ENDPOINT_SLICE = Kind(
    kind="EndpointSlice", group="discovery.k8s.io", version="v1", plural="endpointslices", namespaced=True
)
NODE = Kind(kind="Node", group="", version="v1", plural="nodes", namespaced=False)
NAMESPACE = Kind(kind="Namespace", group="", version="v1", plural="namespaces", namespaced=False)
POD = Kind(kind="Pod", group="", version="v1", plural="pods", namespaced=True)
EVENT = Kind(kind="Event", group="", version="v1", plural="events", namespaced=True)
LEASE = Kind(kind="Lease", group="coordination.k8s.io", version="v1", plural="leases", namespaced=True)
IP_ADDRESS_POOL = Kind(
    kind="IPAddressPool", group="metallb.io", version="v1beta1", plural="ipaddresspools", namespaced=True
)
L2_ADVERTISEMENT = Kind(
    kind="L2Advertisement", group="metallb.io", version="v1beta1", plural="l2advertisements", namespaced=True
)
BGP_PEER = Kind(kind="BGPPeer", group="metallb.io", version="v1beta2", plural="bgppeers", namespaced=True)
BGP_ADVERTISEMENT = Kind(
    kind="BGPAdvertisement", group="metallb.io", version="v1beta1", plural="bgpadvertisements", namespaced=True
)
BFD_PROFILE = Kind(kind="BFDProfile", group="metallb.io", version="v1beta1", plural="bfdprofiles", namespaced=True)
COMMUNITY = Kind(kind="Community", group="metallb.io", version="v1beta1", plural="communities", namespaced=True)
# metalloid's own: one announcer plugin's settings (deploy/base/crds/announcerconfigs.yaml).
ANNOUNCER_CONFIG = Kind(
    kind="AnnouncerConfig", group="metalloid.io", version="v1alpha1", plural="announcerconfigs", namespaced=True
)
# Status-only kinds the speakers and the controller write (never watched).
SERVICE_L2_STATUS = Kind(
    kind="ServiceL2Status", group="metallb.io", version="v1beta1", plural="servicel2statuses", namespaced=True
)
SERVICE_BGP_STATUS = Kind(
    kind="ServiceBGPStatus", group="metallb.io", version="v1beta1", plural="servicebgpstatuses", namespaced=True
)
CONFIGURATION_STATE = Kind(
    kind="ConfigurationState", group="metallb.io", version="v1beta1", plural="configurationstates", namespaced=True
)

# What the watcher lists and watches in both roles; metallb.io kinds only in
# the metalloid namespace (MetalLB ignores them elsewhere too).
WATCHED: tuple[Kind, ...] = (
    SERVICE,
    ENDPOINT_SLICE,
    NODE,
    NAMESPACE,
    IP_ADDRESS_POOL,
    L2_ADVERTISEMENT,
    BGP_PEER,
    BGP_ADVERTISEMENT,
    BFD_PROFILE,
    COMMUNITY,
    ANNOUNCER_CONFIG,
)
CONFIG_KINDS = frozenset({"IPAddressPool", "L2Advertisement", "BGPPeer", "BGPAdvertisement", "BFDProfile", "Community"})
