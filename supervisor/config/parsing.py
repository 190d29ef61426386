"""Turn Kubernetes-shaped objects (YAML documents or API dicts) into a `Config`.

One parser for both modes: `parse_documents` takes what `loading` read from
files (with line numbers), `parse_objects` takes plain dicts as the Kubernetes
API returns them. Each object becomes a frozen model object or, when it is
broken, diagnostics naming the field path, the value and the fix; parsing never
raises. Checks that need more than one object (overlaps, references,
duplicates) are `validation`'s job.

This module dispatches by kind and parses MetalLB's kinds and metalloid's
`Settings`; the core Kubernetes kinds live in `core_kinds`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

from supervisor.config import bgp_kinds, core_kinds
from supervisor.config.addresses import address_note, parse_address_range, parse_ip
from supervisor.config.announcer_config import parse_announcer_config
from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.documents import Document
from supervisor.config.fields import Fields, ObjectContext, describe, line_in
from supervisor.config.kept_fields import kept_keys
from supervisor.config.model import (
    DEFAULT_INTERVAL_SECONDS,
    AnnouncerConfig,
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    Community,
    Config,
    EndpointSlice,
    InertField,
    IPAddress,
    IPAddressPool,
    L2Advertisement,
    MembershipSettings,
    Namespace,
    Node,
    PreferredNodeSelector,
    Service,
    ServiceAllocation,
    Settings,
    Source,
    labels_of,
)
from supervisor.config.selectors import parse_selector, parse_selectors

METALLB_V1BETA1 = "metallb.io/v1beta1"
METALLB_V1BETA2 = "metallb.io/v1beta2"
SETTINGS_API_VERSION = "metalloid.io/v1alpha1"
METALLB_NAMESPACE = "metallb-system"


@dataclass(slots=True)
class _Collected:
    pools: list[IPAddressPool] = field(default_factory=list)
    l2: list[L2Advertisement] = field(default_factory=list)
    peers: list[BGPPeer] = field(default_factory=list)
    bgp: list[BGPAdvertisement] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    slices: list[EndpointSlice] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    settings: list[Settings] = field(default_factory=list)
    bfd_profiles: list[BFDProfile] = field(default_factory=list)
    communities: list[Community] = field(default_factory=list)
    inert: list[InertField] = field(default_factory=list)
    announcers: list[AnnouncerConfig] = field(default_factory=list)


_COLLECTED = tuple(f.name for f in dataclass_fields(_Collected))


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    name: str
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]


def parse_documents(docs: Iterable[Document]) -> tuple[Config, list[Diagnostic]]:
    """Parse every document; return the Config of the valid objects and all diagnostics."""
    collected = _Collected()
    diagnostics: list[Diagnostic] = []
    for doc in docs:
        if doc.body is None:
            continue  # an empty document (a stray `---`) is harmless
        _parse_object(doc.body, doc.file, doc.line, doc.index, collected, diagnostics)
    return _config_of(collected, diagnostics), diagnostics


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one document adds to a config: its objects by `_Collected` list, and its diagnostics.

    A pure function of the document (file, line, index and body): no kind's
    parser reads what other documents added. `reusing` keeps these for the
    documents of a file that did not change between two reloads.
    """

    added: tuple[tuple[str, tuple[Any, ...]], ...]
    diagnostics: tuple[Diagnostic, ...]


def parse_document(doc: Document) -> Parsed:
    """`doc` parsed on its own; `combine` puts documents together as `parse_documents` does."""
    if doc.body is None:
        return Parsed((), ())
    collected = _Collected()
    diagnostics: list[Diagnostic] = []
    _parse_object(doc.body, doc.file, doc.line, doc.index, collected, diagnostics)
    added = tuple((name, tuple(items)) for name in _COLLECTED if (items := getattr(collected, name)))
    return Parsed(added, tuple(diagnostics))


def combine(parsed: Iterable[Parsed]) -> tuple[Config, list[Diagnostic]]:
    """The Config and diagnostics of documents parsed one by one, in their order: `parse_documents`'s answer."""
    collected = _Collected()
    diagnostics: list[Diagnostic] = []
    for one in parsed:
        for name, items in one.added:
            getattr(collected, name).extend(items)
        diagnostics.extend(one.diagnostics)
    return _config_of(collected, diagnostics), diagnostics


def parse_objects(objects: Iterable[Mapping[str, Any]], *, origin: str = "<api>") -> tuple[Config, list[Diagnostic]]:
    """Parse plain dicts (as the Kubernetes API returns them); lines are 0."""
    docs = [Document(file=origin, line=0, index=i, body=obj) for i, obj in enumerate(objects)]
    return parse_documents(docs)


def _config_of(collected: _Collected, diagnostics: list[Diagnostic]) -> Config:
    for extra in collected.settings[1:]:
        diagnostics.append(error(extra.source, "Settings", "settings", f"a second Settings object (the first is at "
                                 f"{collected.settings[0].source}); merge them into one"))
    return Config(
        pools=tuple(collected.pools),
        l2_advertisements=tuple(collected.l2),
        bgp_peers=tuple(collected.peers),
        bgp_advertisements=tuple(collected.bgp),
        services=tuple(collected.services),
        nodes=tuple(collected.nodes),
        endpoint_slices=tuple(collected.slices),
        namespaces=tuple(collected.namespaces),
        bfd_profiles=tuple(collected.bfd_profiles),
        communities=tuple(collected.communities),
        settings=collected.settings[0] if collected.settings else Settings(),
        inert_fields=tuple(collected.inert),
        announcers=tuple(collected.announcers),
    )


def _parse_object(body: Any, file: str, line: int, index: int, out: _Collected, diags: list[Diagnostic]) -> None:
    line = int(getattr(body, "line", 0) or line)
    where = Source(file=file, line=line)
    label = f"document-{index + 1}"
    if not isinstance(body, Mapping):
        diags.append(error(where, "YAML", label, f"document is {describe(body)}, not an object; each document "
                                                 "needs apiVersion, kind and metadata"))
        return
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        diags.append(error(where, str(kind) if isinstance(kind, str) else "YAML", label,
                           f"object without a string apiVersion and kind (got apiVersion {describe(api_version)}, "
                           f"kind {describe(kind)}); add e.g. apiVersion: metallb.io/v1beta1 and kind: IPAddressPool"))
        return
    if kind == "List" and api_version == "v1":
        items = body.get("items")
        for item in items if isinstance(items, list) else []:
            _parse_object(item, file, line, index, out, diags)
        return
    spec = _KINDS.get(kind)
    if spec is None:
        diags.append(warning(where, kind, _name_hint(body), f"kind {kind} ({api_version}) is not used by "
                                                          "metalloid and is ignored"))
        return
    versions, parse = spec
    if api_version not in versions:
        diags.append(error(where, kind, _name_hint(body), f"apiVersion {describe(api_version)} is not supported "
                                                        f"for {kind}; use {' or '.join(versions)}"))
        return
    ctx = ObjectContext(file=file, line=line, kind=kind, name=_name_hint(body), diagnostics=diags)
    parse(Fields(ctx, body, "", line), out)


def _name_hint(body: Mapping[Any, Any]) -> str:
    meta = body.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) and name else "<unnamed>"


def read_meta(top: Fields, *, default_namespace: str | None, qualified: bool = False) -> Meta:
    """metadata.{name,namespace,labels,annotations}; names the object in later diagnostics.

    `qualified` names it `namespace/name` (Services, EndpointSlices), since the
    same name in two namespaces is two objects users tell apart that way.
    """
    meta = top.get_map("metadata")
    if meta is None:
        top.ctx.error(top.line, "metadata is missing; add metadata.name")
        return Meta(name="<unnamed>", namespace=default_namespace or "", labels={}, annotations={})
    name = meta.get_str("name")
    if not name:
        meta.ctx.error(meta.line, "metadata.name is missing or empty; every object needs a name")
        name = "<unnamed>"
    namespace = (meta.get_str("namespace") or default_namespace or "") if default_namespace is not None else ""
    top.ctx.name = f"{namespace}/{name}" if qualified else name
    labels, annotations = meta.get_str_map("labels"), meta.get_str_map("annotations")
    return Meta(name=name, namespace=namespace, labels=labels, annotations=annotations)


def _unique_strs(fields: Fields, key: str) -> tuple[str, ...]:
    """The strings of list `key`, a repeated one kept once with a warning.

    MetalLB refuses the whole configuration over a repeated entry ("duplicate
    definition of …"); it means nothing different, so metalloid accepts it
    and says MetalLB would not (docs/migrating-from-metallb.md).
    """
    seen: dict[str, str] = {}
    for value, path, line in fields.get_strs(key):
        if value in seen:
            fields.ctx.warning(line, f"{path}: {value!r} is listed twice (also {seen[value]}); metalloid ignores the "
                                     f"repetition, but MetalLB refuses the whole configuration over it (duplicate "
                                     f"definition of {key}); remove it")
        else:
            seen[value] = path
    return tuple(seen)


def _warn_foreign_namespace(top: Fields, meta: Meta) -> None:
    """MetalLB's webhook refuses its kinds outside its namespace; a file can hold any namespace.

    Only for files: in Kubernetes mode the watcher reads the metallb.io kinds
    of its own namespace only, as MetalLB does, so others never get here.
    """
    if not top.line or meta.namespace == METALLB_NAMESPACE:
        return
    line = line_in(top.raw("metadata"), "namespace", top.line)
    top.ctx.warning(line, f"metadata.namespace is {meta.namespace!r}: metalloid reads the file whatever the "
                          f"namespace, but MetalLB's webhook refuses a {top.ctx.kind} outside {METALLB_NAMESPACE}, "
                          "and in Kubernetes mode only the controller's namespace is read; use "
                          f"namespace: {METALLB_NAMESPACE} or leave it out")


def _lines(ctx: ObjectContext) -> tuple[tuple[str, int], ...]:
    return tuple(ctx.field_lines.items())


def _pool(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    _warn_foreign_namespace(top, meta)
    spec = top.get_map("spec")
    if spec is None:
        top.ctx.error(top.line, "spec is missing; an IPAddressPool needs spec.addresses")
        return
    spec.warn_unknown(frozenset({"addresses", "autoAssign", "avoidBuggyIPs", "serviceAllocation"}))
    ranges = []
    for text, path, line in spec.get_strs("addresses"):
        parsed = parse_address_range(text)
        if isinstance(parsed, str):
            top.ctx.error(line, f"{path}: {parsed}")
        else:
            ranges.append(parsed)
            note = address_note(text)
            if note is not None:
                top.ctx.warning(line, f"{path}: {note}")
    if not spec.get_list("addresses"):
        spec.ctx.error(spec.line_of("addresses"), "spec.addresses is empty; list at least one CIDR, range or IP, "
                                                  "e.g. - 10.0.10.10-10.0.10.99")
    allocation = spec.get_map("serviceAllocation")
    out.pools.append(IPAddressPool(
        name=meta.name,
        namespace=meta.namespace,
        addresses=tuple(ranges),
        auto_assign=spec.get_bool("autoAssign", True),
        avoid_buggy_ips=spec.get_bool("avoidBuggyIPs", False),
        service_allocation=_service_allocation(allocation) if allocation else None,
        labels=labels_of(meta.labels),
        annotations=labels_of(meta.annotations),
        source=top.ctx.source(),
        field_lines=_lines(top.ctx),
    ))


def _service_allocation(fields: Fields) -> ServiceAllocation:
    fields.warn_unknown(frozenset({"priority", "namespaces", "namespaceSelectors", "serviceSelectors"}))
    return ServiceAllocation(
        priority=fields.get_int("priority", None),
        namespaces=_unique_strs(fields, "namespaces"),
        namespace_selectors=parse_selectors(fields, "namespaceSelectors"),
        service_selectors=parse_selectors(fields, "serviceSelectors"),
    )


_EMPTY: Mapping[str, Any] = {}


def _spec_or_empty(top: Fields) -> Fields:
    return top.get_map("spec") or Fields(top.ctx, _EMPTY, "spec", top.line)


def _l2(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    _warn_foreign_namespace(top, meta)
    spec = _spec_or_empty(top)
    spec.warn_unknown(frozenset({"ipAddressPools", "ipAddressPoolSelectors", "nodeSelectors", "interfaces",
                                 "serviceSelectors", "preferredNodeSelectors"}) | kept_keys("L2Advertisement"))
    out.inert.extend(bgp_kinds.report_kept(spec, "L2Advertisement", meta.namespace, meta.name))
    out.l2.append(L2Advertisement(
        name=meta.name,
        namespace=meta.namespace,
        ip_address_pools=_unique_strs(spec, "ipAddressPools"),
        ip_address_pool_selectors=parse_selectors(spec, "ipAddressPoolSelectors"),
        node_selectors=parse_selectors(spec, "nodeSelectors"),
        interfaces=_interfaces(spec),
        service_selectors=parse_selectors(spec, "serviceSelectors"),
        preferred_node_selectors=_preferred_node_selectors(spec),
        labels=labels_of(meta.labels),
        annotations=labels_of(meta.annotations),
        source=top.ctx.source(),
        field_lines=_lines(top.ctx),
    ))


def _preferred_node_selectors(spec: Fields) -> tuple[PreferredNodeSelector, ...]:
    """`preferredNodeSelectors`: weight 1-100 (MetalLB's CRD bounds) and a preference selector each."""
    found: list[PreferredNodeSelector] = []
    for item in spec.get_maps("preferredNodeSelectors"):
        item.warn_unknown(frozenset({"weight", "preference"}))
        weight = item.get_int("weight", None, low=1, high=100)
        if weight is None and item.raw("weight") is None:
            item.ctx.error(item.line, f"{item.path}.weight is missing; give a weight from 1 to 100")
        preference = item.get_map("preference")
        if preference is None and item.raw("preference") is None:
            item.ctx.error(item.line, f"{item.path}.preference is missing; give a node label selector "
                                      "({} matches every node)")
        selector = parse_selector(preference) if preference is not None else None
        if weight is not None and selector is not None:
            found.append(PreferredNodeSelector(weight=weight, preference=selector))
    return tuple(found)


# Linux's rule for interface names (dev_valid_name): the CRD enforces the same.
_INTERFACE = re.compile(r"^[^/\s:]{1,15}$")


def _interfaces(spec: Fields) -> tuple[str, ...]:
    found: list[str] = []
    for name, path, line in spec.get_strs("interfaces"):
        if _INTERFACE.match(name):
            found.append(name)
        else:
            spec.ctx.error(line, f"{path}: {describe(name)} cannot be a Linux interface name (1-15 characters, no "
                                 "'/', ':' or whitespace); write the name `ip link` shows, e.g. eth0")
    return tuple(found)


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _duration(fields: Fields, key: str) -> float | None:
    """A Kubernetes duration (`90s`, `1m30s`) in seconds; None when absent or wrong."""
    text = fields.get_str(key)
    if text is None:
        return None
    if not _DURATION.match(text):
        fields.ctx.error(fields.line_of(key), f"{fields.path_of(key)}: {describe(text)} is not a duration; "
                                              "write e.g. 90s or 1m30s")
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


_ASN_MAX = 4294967295


_PEER_FIELDS = frozenset({
    "myASN", "peerASN", "peerAddress", "peerPort", "sourceAddress", "routerID", "holdTime", "keepaliveTime",
    "ebgpMultiHop", "password", "nodeSelectors", "bfdProfile",
})
# What v1beta2 added to v1beta1 (MetalLB's api/v1beta2); a v1beta1 object
# setting one of these is pruned by the API server, so `check` says so.
_PEER_V1BETA2_FIELDS = frozenset({
    "vrf", "dynamicASN", "localASN", "interface", "connectTime", "passwordSecret", "enableGracefulRestart",
    "disableMP", "dualStackAddressFamily",
})
_DYNAMIC_ASN_MODES = ("internal", "external")


def _peer(top: Fields, out: _Collected) -> None:
    errors_before = sum(d.is_error for d in top.ctx.diagnostics)
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    _warn_foreign_namespace(top, meta)
    v1beta1 = top.get_str("apiVersion") == METALLB_V1BETA1
    spec = top.get_map("spec")
    if spec is None:
        top.ctx.error(top.line, "spec is missing; a BGPPeer needs spec.myASN, spec.peerASN and spec.peerAddress")
        return
    spec.warn_unknown(_PEER_FIELDS | _PEER_V1BETA2_FIELDS)
    if v1beta1:
        for key in sorted(k for k in _PEER_V1BETA2_FIELDS if spec.has(k)):
            spec.ctx.warning(spec.line_of(key), f"spec.{key} exists only in metallb.io/v1beta2; the API server "
                                                "drops it from a v1beta1 object, change apiVersion to "
                                                "metallb.io/v1beta2")
    my_asn = spec.get_int("myASN", None, low=1, high=_ASN_MAX)
    if my_asn is None and not spec.has("myASN"):
        spec.ctx.error(spec.line, "spec.myASN is missing; set this node's autonomous system number")
    # MetalLB treats 0 as "not set" (Go's zero value), in both versions.
    peer_asn = spec.get_int("peerASN", 0, low=0, high=_ASN_MAX)
    dynamic_asn = _dynamic_asn(spec)
    if not spec.has("peerASN") and not spec.has("dynamicASN"):
        spec.ctx.error(spec.line, "spec.peerASN is missing; set the router's autonomous system number (or, "
                                  "v1beta2, spec.dynamicASN: internal or external)")
    elif spec.raw("peerASN") == 0 and not spec.has("dynamicASN"):
        spec.ctx.error(spec.line_of("peerASN"), "spec.peerASN: 0 is not an AS number; set the router's "
                                                "(or spec.dynamicASN)")
    elif peer_asn and dynamic_asn:
        spec.ctx.error(spec.line_of("dynamicASN"), "spec.peerASN and spec.dynamicASN exclude each other; keep one")
    peer_address, interface = _peer_address(spec)
    source_text = spec.get_str("sourceAddress")
    source_address = parse_ip(source_text) if source_text else None
    if source_text and source_address is None:
        spec.ctx.error(spec.line_of("sourceAddress"), f"spec.sourceAddress: {describe(source_text)} is not an IP "
                                                      "address; write e.g. 10.0.10.1 or remove it")
    router_id = spec.get_str("routerID")
    if router_id and parse_ip(router_id) is None:
        spec.ctx.error(spec.line_of("routerID"), f"spec.routerID: {describe(router_id)} is not an IP address; "
                                                 "write e.g. 10.0.10.1 or remove it")
    hold = _duration(spec, "holdTime")
    keepalive = _duration(spec, "keepaliveTime")
    if hold is not None and 0 < hold < 3:
        spec.ctx.error(spec.line_of("holdTime"), f"spec.holdTime: {spec.raw('holdTime')} is too short; BGP needs 0 "
                                                 "(no keepalives) or at least 3s")
        hold = None
    if keepalive is not None and hold is not None and keepalive > hold:
        spec.ctx.error(spec.line_of("keepaliveTime"), f"spec.keepaliveTime {spec.raw('keepaliveTime')} is longer "
                                                      f"than spec.holdTime {spec.raw('holdTime')}; make it shorter")
    connect = _duration(spec, "connectTime")
    if connect is not None and not (1 <= connect <= 65535 and connect == int(connect)):
        spec.ctx.error(spec.line_of("connectTime"), f"spec.connectTime: {spec.raw('connectTime')} must be a whole "
                                                    "number of seconds from 1s to 65535s")
    # Port 0 is v1beta1's "not set": MetalLB dials 179.
    peer_port = spec.get_int("peerPort", 179, low=0, high=16384) or 179
    multihop = spec.get_bool("ebgpMultiHop", False)
    if multihop and peer_asn and peer_asn == my_asn:
        spec.ctx.error(spec.line_of("ebgpMultiHop"), "spec.ebgpMultiHop is for eBGP, but peerASN equals myASN "
                                                     "(iBGP); remove ebgpMultiHop")
    password = spec.get_str("password")
    secret = spec.get_map("passwordSecret")
    password_secret: tuple[str, str] | None = None
    if secret is not None and secret.get_str("name"):
        password_secret = (secret.get_str("namespace") or meta.namespace, secret.get_str("name") or "")
    if secret is not None:
        secret.warn_unknown(frozenset({"name", "namespace"}))
        if password and secret.get_str("name"):
            spec.ctx.error(spec.line_of("passwordSecret"), "spec.password and spec.passwordSecret exclude each "
                                                           "other; keep one")
    local_asn = spec.get_int("localASN", None, low=1, high=_ASN_MAX)
    graceful_restart = spec.get_bool("enableGracefulRestart", False)
    if spec.get_bool("disableMP", False):
        # MetalLB's words: separate sessions per family are what a peer gets anyway.
        spec.ctx.warning(spec.line_of("disableMP"), "spec.disableMP is deprecated and has no effect: a session "
                                                    "carries only its address's family unless "
                                                    "spec.dualStackAddressFamily is true; remove it")
    dual_stack = spec.get_bool("dualStackAddressFamily", False)
    bfd_profile = spec.get_str("bfdProfile", "") or ""
    vrf = spec.get_str("vrf", "") or ""
    selectors = parse_selectors(spec, "nodeSelectors")
    out.inert.extend(bgp_kinds.report_kept(spec, "BGPPeer", meta.namespace, meta.name))
    if sum(d.is_error for d in top.ctx.diagnostics) > errors_before or my_asn is None:
        return  # a peer with an error is not half-used
    out.peers.append(BGPPeer(
        name=meta.name,
        namespace=meta.namespace,
        my_asn=my_asn,
        peer_asn=peer_asn or 0,
        dynamic_asn=dynamic_asn,
        peer_address=peer_address,
        interface=interface,
        peer_port=peer_port,
        source_address=source_address,
        router_id=router_id,
        hold_time_seconds=hold if hold is not None else 90.0,
        keepalive_time_seconds=keepalive,
        ebgp_multihop=multihop,
        password=password,
        password_secret=password_secret,
        connect_time_seconds=connect,
        enable_graceful_restart=bool(graceful_restart),
        vrf=vrf,
        bfd_profile=bfd_profile,
        local_asn=local_asn,
        dual_stack_address_family=bool(dual_stack),
        node_selectors=selectors,
        source=top.ctx.source(),
        field_lines=_lines(top.ctx),
    ))


def _dynamic_asn(spec: Fields) -> str:
    text = spec.get_str("dynamicASN", "") or ""
    if text and text not in _DYNAMIC_ASN_MODES:
        spec.ctx.error(spec.line_of("dynamicASN"), f"spec.dynamicASN: {describe(text)} is not a mode; use internal "
                                                   "(the peer's ASN equals myASN) or external (it differs)")
        return ""
    return text


def _peer_address(spec: Fields) -> tuple[IPAddress | None, str]:
    """(peerAddress, interface): MetalLB wants exactly one of the two."""
    address_text = spec.get_str("peerAddress", "") or ""
    interface = spec.get_str("interface", "") or ""
    peer_address = parse_ip(address_text) if address_text else None
    if address_text and peer_address is None:
        spec.ctx.error(spec.line_of("peerAddress"), f"spec.peerAddress: {describe(address_text)} is not an IP "
                                                    "address; write e.g. 10.0.0.1")
    if not address_text and not interface:
        spec.ctx.error(spec.line, "spec.peerAddress is missing; set the router's IP address (or, v1beta2, "
                                  "spec.interface for an unnumbered session)")
    elif address_text and interface:
        spec.ctx.error(spec.line_of("interface"), "spec.peerAddress and spec.interface exclude each other; keep one")
    return peer_address, interface


def _bgp_advertisement(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    _warn_foreign_namespace(top, meta)
    spec = _spec_or_empty(top)
    spec.warn_unknown(frozenset({
        "aggregationLength", "aggregationLengthV6", "localPref", "communities", "ipAddressPools",
        "ipAddressPoolSelectors", "nodeSelectors", "peers", "serviceSelectors",
    }) | kept_keys("BGPAdvertisement"))
    aggregation = spec.get_int("aggregationLength", 32, low=1, high=32) or 32
    aggregation_v6 = spec.get_int("aggregationLengthV6", 128, low=0, high=128)
    if spec.get_list("serviceSelectors") and (aggregation != 32 or aggregation_v6 != 128):
        spec.ctx.error(spec.line_of("serviceSelectors"), "spec.serviceSelectors only works with the default "
                       "aggregationLength 32 and aggregationLengthV6 128 (MetalLB's rule: per-Service routes are "
                       "host routes); remove serviceSelectors or the aggregation lengths")
    out.inert.extend(bgp_kinds.report_kept(spec, "BGPAdvertisement", meta.namespace, meta.name))
    out.bgp.append(BGPAdvertisement(
        name=meta.name,
        namespace=meta.namespace,
        ip_address_pools=_unique_strs(spec, "ipAddressPools"),
        ip_address_pool_selectors=parse_selectors(spec, "ipAddressPoolSelectors"),
        aggregation_length=aggregation,
        aggregation_length_v6=aggregation_v6 if aggregation_v6 is not None else 128,
        local_pref=spec.get_int("localPref", None, low=0, high=_ASN_MAX),
        communities=bgp_kinds.advertisement_communities(spec),
        peers=_unique_strs(spec, "peers"),
        node_selectors=parse_selectors(spec, "nodeSelectors"),
        service_selectors=parse_selectors(spec, "serviceSelectors"),
        source=top.ctx.source(),
        field_lines=_lines(top.ctx),
    ))


def _settings(top: Fields, out: _Collected) -> None:
    read_meta(top, default_namespace=None)
    spec = _spec_or_empty(top)
    spec.warn_unknown(frozenset({"stateDir", "bindLocal", "refreshSeconds", "membership", EXCLUDE_KEY}))
    defaults = MembershipSettings()
    membership = defaults
    members = spec.get_map("membership")
    if members is not None:
        members.warn_unknown(frozenset({"port", "intervalSeconds", "deadAfterSeconds", "keyFile", "insecure"}))
        interval = members.get_number("intervalSeconds", None, low=0.001)
        dead_after = members.get_number("deadAfterSeconds", None, low=0.001)
        # Unset, the interval is at least the default's smallest (it grows with the cluster).
        shortest = interval if interval is not None else DEFAULT_INTERVAL_SECONDS
        if dead_after is not None and dead_after <= shortest:
            members.ctx.error(members.line_of("deadAfterSeconds"),
                              f"spec.membership.deadAfterSeconds {dead_after} is not longer than intervalSeconds "
                              f"{shortest}; a peer would be declared dead between two heartbeats, use at least "
                              f"{round(shortest * 3, 3)} (or leave it unset: adaptive)")
        membership = MembershipSettings(
            port=members.get_int("port", defaults.port, low=1, high=65535) or defaults.port,
            interval_seconds=interval,
            dead_after_seconds=dead_after,
            key_file=members.get_str("keyFile"),
            insecure=members.get_bool("insecure", False),
        )
    out.settings.append(Settings(
        interfaces_to_exclude=_interfaces_to_exclude(spec),
        state_dir=spec.get_str("stateDir"),
        membership=membership,
        bind_local=spec.get_bool("bindLocal", False),
        refresh_seconds=spec.get_number("refreshSeconds", 0.0, low=0.0) or 0.0,
        source=top.ctx.source(),
    ))


# MetalLB's key in its metallb-excludel2 ConfigMap; standalone has it in Settings.
EXCLUDE_KEY = "announcedInterfacesToExclude"


def _interfaces_to_exclude(spec: Fields) -> tuple[str, ...] | None:
    """Layer 2's interface exclude list (regular expressions); None when the key is absent."""
    if spec.raw(EXCLUDE_KEY) is None:
        return None
    patterns: list[str] = []
    for text, path, line in spec.get_strs(EXCLUDE_KEY):
        try:
            re.compile(text)
        except re.error as exc:
            spec.ctx.error(line, f"{path}: {text!r} is not a valid regular expression ({exc}); fix or remove it")
        else:
            patterns.append(text)
    return tuple(patterns)


_Parser = Callable[[Fields, _Collected], None]


def _bfd_profile(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    spec = _spec_or_empty(top)
    out.bfd_profiles.append(bgp_kinds.parse_bfd_profile(spec, meta.name, meta.namespace))
    out.inert.extend(bgp_kinds.report_kept_kind(top, "BFDProfile", meta.namespace, meta.name))


def _community(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    out.communities.append(bgp_kinds.parse_community(_spec_or_empty(top), meta.name, meta.namespace))


def _service(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace="default", qualified=True)
    service = core_kinds.parse_service(top, meta.name, meta.namespace, meta.labels, meta.annotations)
    if service is not None:
        out.services.append(service)


def _node(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=None)
    out.nodes.append(core_kinds.parse_node(top, meta.name, meta.labels))


def _endpoint_slice(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace="default", qualified=True)
    found = core_kinds.parse_endpoint_slice(top, meta.name, meta.namespace, meta.labels)
    if found is not None:
        out.slices.append(found)


def _namespace(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=None)
    out.namespaces.append(Namespace(name=meta.name, labels=labels_of(meta.labels), source=top.ctx.source()))


def _announcer_config(top: Fields, out: _Collected) -> None:
    meta = read_meta(top, default_namespace=METALLB_NAMESPACE)
    out.announcers.append(parse_announcer_config(top, meta.name, meta.namespace))


_KINDS: dict[str, tuple[tuple[str, ...], _Parser]] = {
    "IPAddressPool": ((METALLB_V1BETA1,), _pool),
    "L2Advertisement": ((METALLB_V1BETA1,), _l2),
    "BGPPeer": ((METALLB_V1BETA1, METALLB_V1BETA2), _peer),
    "BGPAdvertisement": ((METALLB_V1BETA1,), _bgp_advertisement),
    "Service": (("v1",), _service),
    "Node": (("v1",), _node),
    "EndpointSlice": (("discovery.k8s.io/v1",), _endpoint_slice),
    "Namespace": (("v1",), _namespace),
    "Settings": ((SETTINGS_API_VERSION,), _settings),
    "BFDProfile": ((METALLB_V1BETA1,), _bfd_profile),
    "Community": ((METALLB_V1BETA1,), _community),
    "AnnouncerConfig": ((SETTINGS_API_VERSION,), _announcer_config),
}
