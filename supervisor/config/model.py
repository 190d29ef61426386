"""The typed configuration model: MetalLB's resources as frozen dataclasses.

Both modes feed this model: the standalone file watcher parses YAML documents
into it, the Kubernetes watcher parses API objects (plain dicts) into it. Every
object remembers where it came from (`Source`) so validation errors can point at
a file and line. Nothing here does I/O or knows about processes; every value is
immutable and picklable, so a whole `Config` can travel on a multiprocessing
queue.

This module only declares shapes and small pure queries on them; parsing lives in
`supervisor.config.parsing`, validation in `supervisor.config.validation`.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from supervisor.pickling import NOT_PICKLED, quick_pickle

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

# Labels and annotations are kept as sorted tuples of pairs: hashable, picklable
# and deterministic, which a dict is not (for hashing).
Labels: TypeAlias = tuple[tuple[str, str], ...]

EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

# (field path, line) pairs such as ("spec.addresses[1]", 14): where each field of
# an object was written, so validation can point at the offending field rather
# than at the object. Excluded from equality: moving a line changes nothing.
# Never pickled (`NOT_PICKLED`): only validation reads it, and validation runs
# where the config is loaded (the watchers, `metalloid check`); every process a
# config is sent to would only carry it, a third of a Service's pickle
# (bench/payloads.py). The unpickled object still equals the original. The one
# exception is a parse handed to the process that validates it (`metalloid run`'s
# start-up check to the file watcher: `pickling.dumps_whole`).
FieldLines: TypeAlias = tuple[tuple[str, int], ...]


def field_source(source: Source, field_lines: FieldLines, path: str) -> Source:
    """The Source of field `path` of an object, or the object's own when unknown."""
    line = next((line for p, line in field_lines if p == path), 0)
    return Source(file=source.file, line=line) if line else source


def labels_of(mapping: Mapping[str, str] | None) -> Labels:
    """Freeze a label mapping into the canonical sorted tuple form."""
    return tuple(sorted((mapping or {}).items()))


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where an object (or one of its fields) was written: file and 1-based line.

    Objects that came from the Kubernetes API use `file="<api>"` and line 0.
    """

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


API_SOURCE = Source(file="<api>", line=0)


class SelectorOperator(enum.Enum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class SelectorRequirement:
    key: str
    operator: SelectorOperator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        match self.operator:
            case SelectorOperator.IN:
                return self.key in labels and labels[self.key] in self.values
            case SelectorOperator.NOT_IN:
                return self.key not in labels or labels[self.key] not in self.values
            case SelectorOperator.EXISTS:
                return self.key in labels
            case SelectorOperator.DOES_NOT_EXIST:
                return self.key not in labels


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """A Kubernetes label selector (matchLabels ANDed with matchExpressions).

    An empty selector matches everything, as in Kubernetes.
    """

    match_labels: Labels = ()
    match_expressions: tuple[SelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | Labels) -> bool:
        actual = dict(labels) if not isinstance(labels, Mapping) else labels
        if any(actual.get(k) != v for k, v in self.match_labels):
            return False
        return all(req.matches(actual) for req in self.match_expressions)


def any_selector_matches(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str] | Labels) -> bool:
    """MetalLB's rule for selector lists: no selectors means 'everything'."""
    return not selectors or any(s.matches(labels) for s in selectors)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AddressRange:
    """One entry of `IPAddressPool.spec.addresses`, as an inclusive range.

    `text` is what the user wrote (`10.0.10.0/24`, `10.0.10.10-10.0.10.99`,
    `10.0.10.5`), kept for messages and status output.
    """

    first: IPAddress
    last: IPAddress
    text: str

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return False
        return ip.version == self.first.version and int(self.first) <= int(ip) <= int(self.last)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAllocation:
    """`IPAddressPool.spec.serviceAllocation`: which services may use the pool."""

    priority: int | None = None
    namespaces: tuple[str, ...] = ()
    namespace_selectors: tuple[LabelSelector, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class IPAddressPool:
    name: str
    namespace: str = "metallb-system"
    addresses: tuple[AddressRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    labels: Labels = ()
    annotations: Labels = ()
    source: Source = API_SOURCE
    field_lines: FieldLines = field(default=(), compare=False, repr=False, metadata=NOT_PICKLED)

    def contains(self, ip: IPAddress) -> bool:
        """True when `ip` is usable from this pool (inside a range, not a buggy IP)."""
        if self.avoid_buggy_ips and ip.version == 4 and int(ip) & 0xFF in (0, 255):
            return False
        return any(ip in r for r in self.addresses)

    def families(self) -> frozenset[int]:
        return frozenset(r.version for r in self.addresses)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class PreferredNodeSelector:
    """`L2Advertisement.spec.preferredNodeSelectors[]`: nodes matching `preference` score `weight` (1-100)."""

    weight: int
    preference: LabelSelector


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class L2Advertisement:
    name: str
    namespace: str = "metallb-system"
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    # Only Services matching one of these are announced through it (none: every Service).
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_node_selectors: tuple[PreferredNodeSelector, ...] = ()
    labels: Labels = ()
    annotations: Labels = ()
    source: Source = API_SOURCE
    field_lines: FieldLines = field(default=(), compare=False, repr=False, metadata=NOT_PICKLED)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class BGPPeer:
    name: str
    namespace: str = "metallb-system"
    my_asn: int
    # 0 when dynamic_asn is set instead (MetalLB's convention: 0 is "unset").
    peer_asn: int
    dynamic_asn: str = ""  # "internal" or "external"
    # None when the session is unnumbered over `interface` instead.
    peer_address: IPAddress | None
    interface: str = ""
    peer_port: int = 179
    source_address: IPAddress | None = None
    router_id: str | None = None
    hold_time_seconds: float = 90.0
    keepalive_time_seconds: float | None = None
    ebgp_multihop: bool = False
    password: str | None = None
    # spec.passwordSecret as (namespace, name); the bgp plugin reads the Secret's `password` key.
    password_secret: tuple[str, str] | None = None
    connect_time_seconds: float | None = None
    enable_graceful_restart: bool = False
    vrf: str = ""
    bfd_profile: str = ""  # acted on by the bgp plugin (FRR's bfdd)
    # The AS number announced to this peer instead of my_asn (FRR's `local-as`); None: my_asn.
    local_asn: int | None = None
    # Exchange both families' routes over this session (else only its address's family).
    dual_stack_address_family: bool = False
    node_selectors: tuple[LabelSelector, ...] = ()
    source: Source = API_SOURCE
    field_lines: FieldLines = field(default=(), compare=False, repr=False, metadata=NOT_PICKLED)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class BGPAdvertisement:
    name: str
    namespace: str = "metallb-system"
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    # Only Services matching one of these are advertised through it (none: every Service).
    service_selectors: tuple[LabelSelector, ...] = ()
    source: Source = API_SOURCE
    field_lines: FieldLines = field(default=(), compare=False, repr=False, metadata=NOT_PICKLED)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class BFDProfile:
    """`metallb.io/v1beta1 BFDProfile`: the bgp plugin renders it as an FRR bfd profile.

    Intervals are milliseconds; None means "not set" (FRR's default applies in MetalLB).
    """

    name: str
    namespace: str = "metallb-system"
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None
    source: Source = API_SOURCE


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class CommunityAlias:
    name: str
    value: str  # "65535:65282" or "large:64512:1:2", validated


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Community:
    """`metallb.io/v1beta1 Community`: names for BGP community values."""

    name: str
    namespace: str = "metallb-system"
    aliases: tuple[CommunityAlias, ...] = ()
    source: Source = API_SOURCE


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class InertField:
    """One object setting a field metalloid keeps but does not act on.

    See `supervisor.config.kept_fields` for the list of such fields; `message`
    is the text of the `check` warning, meant for Events and status too.
    """

    kind: str
    namespace: str
    name: str
    path: str  # "spec.bfdProfile", or "spec" for a kind metalloid does not use at all
    source: Source
    metallb_effect: str

    @property
    def message(self) -> str:
        if self.path == "spec":
            return (f"metalloid keeps {self.kind} objects but does not act on them (MetalLB uses them to "
                    f"{self.metallb_effect}); they have no effect here")
        return (f"{self.path} is kept but metalloid does not act on it (MetalLB uses it to {self.metallb_effect}); "
                "it has no effect here")


class ExternalTrafficPolicy(enum.Enum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


class IPFamilyPolicy(enum.Enum):
    SINGLE_STACK = "SingleStack"
    PREFER_DUAL_STACK = "PreferDualStack"
    REQUIRE_DUAL_STACK = "RequireDualStack"


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    name: str = ""
    protocol: str = "TCP"
    port: int


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True, order=True)
class ServiceKey:
    """`namespace/name`: how every part of metalloid refers to a Service."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ServiceKey:
        namespace, _, name = text.partition("/")
        if not name:
            return cls(namespace="default", name=namespace)
        return cls(namespace=namespace, name=name)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A `v1 Service`, reduced to what load balancing needs.

    `requested_ips` merges `spec.loadBalancerIP` and the `loadBalancerIPs`
    annotation (a Service that sets both gets a `problem` instead);
    `requested_pool` comes from the `address-pool` annotation; `sharing_key`
    from `allow-shared-ip`. `status_ips` is `status.loadBalancer.ingress`, the
    IPs the Service already holds, which the allocator keeps when it can.
    """

    namespace: str
    name: str
    type: str = "LoadBalancer"
    labels: Labels = ()
    annotations: Labels = ()
    selector: Labels = ()
    ports: tuple[ServicePort, ...] = ()
    requested_ips: tuple[IPAddress, ...] = ()
    requested_pool: str | None = None
    sharing_key: str | None = None
    ip_families: tuple[int, ...] = (4,)
    ip_family_policy: IPFamilyPolicy = IPFamilyPolicy.SINGLE_STACK
    external_traffic_policy: ExternalTrafficPolicy = ExternalTrafficPolicy.CLUSTER
    load_balancer_class: str | None = None
    status_ips: tuple[IPAddress, ...] = ()
    # Why this Service cannot be served as written (both spec.loadBalancerIP and
    # the annotation, an unparsable IP, a family mismatch…): set by
    # `isolation`, so the allocator leaves it pending with this reason while
    # every other Service proceeds (MetalLB confines such a problem to the
    # Service too). None for a Service without errors.
    problem: str | None = None
    source: Source = API_SOURCE
    field_lines: FieldLines = field(default=(), compare=False, repr=False, metadata=NOT_PICKLED)

    @property
    def key(self) -> ServiceKey:
        return ServiceKey(namespace=self.namespace, name=self.name)

    @property
    def is_load_balancer(self) -> bool:
        return self.type == "LoadBalancer"


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """A `v1 Node`: a membership peer. `addresses` are its InternalIPs."""

    name: str
    labels: Labels = ()
    addresses: tuple[IPAddress, ...] = ()
    network_unavailable: bool = False
    ready: bool = True
    source: Source = API_SOURCE

    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    addresses: tuple[IPAddress, ...] = ()
    node_name: str | None = None
    ready: bool = True
    serving: bool = True


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSlice:
    namespace: str
    name: str
    service_name: str
    endpoints: tuple[Endpoint, ...] = ()
    source: Source = API_SOURCE

    @property
    def service_key(self) -> ServiceKey:
        return ServiceKey(namespace=self.namespace, name=self.service_name)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace:
    name: str
    labels: Labels = ()
    source: Source = API_SOURCE


# The heartbeat interval when `intervalSeconds` is not set: 0.05 s, so that a
# dead node's IPs move in ~0.2 s (3 intervals + a learnt margin, see
# supervisor/membership/deadline.py) ...
DEFAULT_INTERVAL_SECONDS = 0.05
# ... until a node would send more than this many heartbeats a second (one per
# peer per interval; it receives as many): beyond 50 peers the default interval
# grows with the cluster (0.25 s at 250 peers), so a node's membership CPU stays
# bounded and detection slows instead (docs/failover.md, Tuning).
DEFAULT_HEARTBEATS_PER_SECOND = 1000.0


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipSettings:
    """Heartbeat timings. Defaults give sub-second failover (see docs/failover.md)."""

    port: int = 7946
    # None (the default): `interval_for(peers)`, 0.05 s up to 50 peers.
    interval_seconds: float | None = None
    # A peer is dead after this long without a heartbeat. None (the default):
    # adaptive, 3 missed intervals plus a margin learnt from that peer's
    # measured lateness (supervisor/membership/deadline.py).
    dead_after_seconds: float | None = None
    key_file: str | None = None
    insecure: bool = False

    def interval_for(self, peers: int) -> float:
        """The heartbeat interval of a node with `peers` peers: the configured one, or the default."""
        if self.interval_seconds is not None:
            return self.interval_seconds
        return max(DEFAULT_INTERVAL_SECONDS, peers / DEFAULT_HEARTBEATS_PER_SECOND)


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The metalloid-only `Settings` object (kind `Settings`, group metalloid.io).

    Holds what has no Kubernetes home in standalone mode. All optional.
    """

    state_dir: str | None = None
    membership: MembershipSettings = field(default_factory=MembershipSettings)
    # Standalone only: also bind announced IPs locally (see plugins/layer2).
    bind_local: bool = False
    # Re-send gratuitous ARP / unsolicited NA every N seconds (0 = off, MetalLB's way).
    refresh_seconds: float = 0.0
    # Standalone: MetalLB's announcedInterfacesToExclude (regular expressions); None = not set.
    interfaces_to_exclude: tuple[str, ...] | None = None
    source: Source = API_SOURCE


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerConfig:
    """One announcer plugin's place in the config (kind `AnnouncerConfig`, group metalloid.io).

    `name` is the announcer's protocol ("layer2", "example"). `settings` is the
    plugin's own free-form `spec.settings`, kept as canonical JSON text so the
    object stays frozen, hashable and picklable; read it with `settings`.
    `hang_timeout_seconds` None = the node's --hung-timeout.
    """

    name: str
    namespace: str = "metallb-system"
    enabled: bool = True
    hang_timeout_seconds: float | None = None
    settings_json: str = "{}"
    source: Source = API_SOURCE
    field_lines: FieldLines = field(default=(), compare=False, repr=False, metadata=NOT_PICKLED)

    @property
    def settings(self) -> dict[str, Any]:
        """A fresh copy of `spec.settings` (JSON types: dict, list, str, int, float, bool, None)."""
        loaded = json.loads(self.settings_json)
        return loaded if isinstance(loaded, dict) else {}


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything metalloid knows about the cluster at one moment."""

    pools: tuple[IPAddressPool, ...] = ()
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    bgp_peers: tuple[BGPPeer, ...] = ()
    bgp_advertisements: tuple[BGPAdvertisement, ...] = ()
    services: tuple[Service, ...] = ()
    nodes: tuple[Node, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    bfd_profiles: tuple[BFDProfile, ...] = ()
    communities: tuple[Community, ...] = ()
    settings: Settings = field(default_factory=Settings)
    # True when `endpoint_slices` are every EndpointSlice there is (Kubernetes):
    # a Service with none has no endpoint, so it is not announced (MetalLB).
    # False for a config file, where a Service whose EndpointSlices are not
    # listed at all is taken as served by the host (keepalived-style).
    endpoints_listed: bool = False
    # Fields set in the objects above that metalloid keeps but does not act on
    # (see supervisor.config.kept_fields), one record per object and field.
    inert_fields: tuple[InertField, ...] = ()
    announcers: tuple[AnnouncerConfig, ...] = ()

    def announcer(self, name: str) -> AnnouncerConfig | None:
        """The AnnouncerConfig of protocol `name`, if the config has one."""
        return next((a for a in self.announcers if a.name == name), None)

    def pool(self, name: str) -> IPAddressPool | None:
        return next((p for p in self.pools if p.name == name), None)

    def service(self, key: ServiceKey) -> Service | None:
        return next((s for s in self.services if s.key == key), None)

    def services_by_key(self) -> dict[ServiceKey, Service]:
        """The first Service of each key (as `service` finds it), for a caller that looks up many.

        Planners look up every assigned Service: `service` in that loop was
        O(n²), 2.4 s of CPU per view with 1,000 Services in the layer 2
        announcer, which then missed its heartbeats. The dict is the caller's,
        built once per pass and dropped with it: a cache kept on the side held
        old Services alive (+8 MiB PSS over the node, bench/runtime.py).
        """
        index: dict[ServiceKey, Service] = {}
        for s in self.services:
            index.setdefault(s.key, s)
        return index

    def endpoint_slices_by_service(self) -> dict[ServiceKey, tuple[EndpointSlice, ...]]:
        """Each Service's EndpointSlices, in config order, for a caller that looks up many (`services_by_key`).

        Electing every Service scanned every slice once per Service: O(n²), over
        3 s of CPU per view in a speaker with 1,000 Services and their slices,
        so its layer 2 announcer missed its heartbeats and was killed as hung
        over and over (bench/speaker_memory.py, 2026-12-07). Built once per pass
        by the caller and dropped with it, as `services_by_key`.
        """
        index: dict[ServiceKey, list[EndpointSlice]] = {}
        for s in self.endpoint_slices:
            index.setdefault(s.service_key, []).append(s)
        return {key: tuple(found) for key, found in index.items()}

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def l2_advertisements_for(self, pool_name: str) -> tuple[L2Advertisement, ...]:
        """The L2Advertisements covering a pool (MetalLB: none named = all pools)."""
        pool = self.pool(pool_name)
        return tuple(a for a in self.l2_advertisements if _covers(a, pool))

    def l2_advertisements_for_service(self, pool_name: str, service: Service) -> tuple[L2Advertisement, ...]:
        """MetalLB's `l2AdsForService`: the pool's advertisements whose serviceSelectors (if any) match."""
        return tuple(a for a in self.l2_advertisements_for(pool_name) if _selects(a, service))

    def bgp_advertisements_for(self, pool_name: str) -> tuple[BGPAdvertisement, ...]:
        pool = self.pool(pool_name)
        return tuple(a for a in self.bgp_advertisements if _covers(a, pool))

    def bgp_advertisements_for_service(self, pool_name: str, service: Service) -> tuple[BGPAdvertisement, ...]:
        """MetalLB's `bgpAdsForService` (without its node filter, which the planner applies per
        advertisement): the pool's advertisements whose serviceSelectors (if any) match."""
        return tuple(a for a in self.bgp_advertisements_for(pool_name) if _selects(a, service))

    def namespace_labels(self, name: str) -> dict[str, str]:
        ns = next((n for n in self.namespaces if n.name == name), None)
        labels = dict(ns.labels) if ns else {}
        # Kubernetes sets this label on every namespace; selectors rely on it.
        labels.setdefault("kubernetes.io/metadata.name", name)
        return labels


def _selects(adv: L2Advertisement | BGPAdvertisement, service: Service) -> bool:
    """An advertisement's serviceSelectors (ORed; none selects every Service) against a Service's labels."""
    return not adv.service_selectors or any(s.matches(service.labels) for s in adv.service_selectors)


def _covers(adv: L2Advertisement | BGPAdvertisement, pool: IPAddressPool | None) -> bool:
    if pool is None:
        return False
    if not adv.ip_address_pools and not adv.ip_address_pool_selectors:
        return True
    return pool.name in adv.ip_address_pools or any(s.matches(pool.labels) for s in adv.ip_address_pool_selectors)
