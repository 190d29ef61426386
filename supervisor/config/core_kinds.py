"""Parse the core Kubernetes kinds metalloid reads: Service, Node, EndpointSlice.

Only the fields load balancing needs are read; the rest of a Service or Node is
left alone without warnings (they have many fields metalloid does not care
about). MetalLB's Service annotations are read here, the legacy
`metallb.universe.tf/` spellings with a deprecation warning.
"""

from __future__ import annotations

from typing import TypeVar

from supervisor.config.addresses import parse_ip
from supervisor.config.fields import Fields, describe
from supervisor.config.model import (
    Endpoint,
    EndpointSlice,
    ExternalTrafficPolicy,
    IPAddress,
    IPFamilyPolicy,
    Node,
    Service,
    ServicePort,
    labels_of,
)

ANNOTATION_PREFIX = "metallb.io/"
LEGACY_ANNOTATION_PREFIX = "metallb.universe.tf/"
LOAD_BALANCER_IPS = "loadBalancerIPs"
ADDRESS_POOL = "address-pool"
ALLOW_SHARED_IP = "allow-shared-ip"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_FAMILIES = {"IPv4": 4, "IPv6": 6}

E = TypeVar("E", IPFamilyPolicy, ExternalTrafficPolicy)


def _annotation(top: Fields, annotations: dict[str, str], suffix: str) -> tuple[str | None, str]:
    """The value of metallb.io/<suffix> (or its legacy spelling) and the key it came from."""
    key = ANNOTATION_PREFIX + suffix
    legacy = LEGACY_ANNOTATION_PREFIX + suffix
    path = "metadata.annotations."
    if legacy in annotations:
        line = top.ctx.field_lines.get(path + legacy)
        if key in annotations:
            top.ctx.warning(line, f"annotation {legacy} is ignored because {key} is also set; remove {legacy}")
        else:
            top.ctx.warning(line, f"annotation {legacy} is deprecated; rename it to {key}")
            return annotations[legacy], legacy
    return annotations.get(key), key


def parse_service(
    top: Fields, name: str, namespace: str, labels: dict[str, str], annotations: dict[str, str]
) -> Service | None:
    spec = top.get_map("spec")
    if spec is None:
        top.ctx.error(top.line, "spec is missing; a LoadBalancer Service needs spec.type: LoadBalancer and ports")
        return None
    service_type = spec.get_str("type")
    if service_type is None:
        service_type = "ClusterIP"
    elif service_type not in _SERVICE_TYPES:
        spec.ctx.error(spec.line_of("type"), f"spec.type: unknown type {describe(service_type)}; use one of "
                                             f"{', '.join(_SERVICE_TYPES)}")
    requested = _requested_ips(top, spec, annotations)
    pool, _ = _annotation(top, annotations, ADDRESS_POOL)
    sharing_key, _ = _annotation(top, annotations, ALLOW_SHARED_IP)
    policy = _enum(spec, "ipFamilyPolicy", IPFamilyPolicy, IPFamilyPolicy.SINGLE_STACK)
    families = _families(spec, policy, requested)
    for ip in requested:
        if ip.version not in families:
            spec.ctx.error(spec.line_of("ipFamilies"), f"requested IP {ip} is IPv{ip.version} but the Service's "
                                                       f"ipFamilies are {_family_names(families)}; add IPv{ip.version} "
                                                       "to spec.ipFamilies or request an IP of the right family")
    status = top.get_map("status")
    load_balancer = status.get_map("loadBalancer") if status else None
    status_ips: list[IPAddress] = []
    for ingress in load_balancer.get_maps("ingress") if load_balancer else ():
        text = ingress.get_str("ip")
        if text is None:
            continue  # hostname-only ingress entries are other controllers' business
        held = parse_ip(text)
        if held is None:
            ingress.ctx.error(ingress.line_of("ip"), f"{ingress.path_of('ip')}: {describe(text)} is not an IP "
                                                     "address; fix or remove the status entry")
        else:
            status_ips.append(held)
    return Service(
        namespace=namespace,
        name=name,
        type=service_type,
        labels=labels_of(labels),
        annotations=labels_of(annotations),
        selector=labels_of(spec.get_str_map("selector")),
        ports=tuple(p for p in (_port(p) for p in spec.get_maps("ports")) if p is not None),
        requested_ips=requested,
        requested_pool=pool,
        sharing_key=sharing_key,
        ip_families=families,
        ip_family_policy=policy,
        external_traffic_policy=_enum(spec, "externalTrafficPolicy", ExternalTrafficPolicy,
                                      ExternalTrafficPolicy.CLUSTER),
        load_balancer_class=spec.get_str("loadBalancerClass"),
        status_ips=tuple(status_ips),
        source=top.ctx.source(),
        # Only lines a file gave: an API object's are all 0, which `field_source` reads as "the
        # object's own source" anyway, and 15 entries for each of 1,000 Services were ~1 MiB of the
        # Kubernetes watcher's parse (tracemalloc, 2026-12-07).
        field_lines=tuple((path, line) for path, line in top.ctx.field_lines.items() if line),
    )


def _requested_ips(top: Fields, spec: Fields, annotations: dict[str, str]) -> tuple[IPAddress, ...]:
    from_spec = spec.get_str("loadBalancerIP")
    from_annotation, key = _annotation(top, annotations, LOAD_BALANCER_IPS)
    if from_spec and from_annotation is not None:
        spec.ctx.error(spec.line_of("loadBalancerIP"),
                       f"both spec.loadBalancerIP ({from_spec}) and annotation {key} ({from_annotation}) are set; "
                       f"keep only the annotation (spec.loadBalancerIP is deprecated in Kubernetes)")
        return ()
    if from_spec:
        ip = parse_ip(from_spec)
        if ip is None:
            spec.ctx.error(spec.line_of("loadBalancerIP"), f"spec.loadBalancerIP: {describe(from_spec)} is not an "
                                                           "IP address; write e.g. 10.0.10.50")
            return ()
        return (ip,)
    if from_annotation is None:
        return ()
    line = top.ctx.field_lines.get("metadata.annotations." + key)
    ips: list[IPAddress] = []
    for part in from_annotation.split(","):
        ip = parse_ip(part)
        if ip is None:
            top.ctx.error(line, f"annotation {key}: {describe(part.strip())} is not an IP address; write a "
                                "comma-separated list, e.g. 10.0.10.50,fd00::50")
            return ()
        ips.append(ip)
    if len(ips) > 2 or len({ip.version for ip in ips}) != len(ips):
        top.ctx.error(line, f"annotation {key}: {describe(from_annotation)} must hold at most one IPv4 and one "
                            "IPv6 address")
        return ()
    return tuple(ips)


def _families(spec: Fields, policy: IPFamilyPolicy, requested: tuple[IPAddress, ...]) -> tuple[int, ...]:
    families: list[int] = []
    for text, path, line in spec.get_strs("ipFamilies"):
        family = _FAMILIES.get(text)
        if family is None:
            spec.ctx.error(line, f"{path}: unknown family {describe(text)}; use IPv4 or IPv6")
        elif family in families:
            spec.ctx.error(line, f"{path}: {text} is listed twice; list each family once")
        else:
            families.append(family)
    if families:
        if policy is IPFamilyPolicy.SINGLE_STACK and len(families) > 1:
            spec.ctx.error(spec.line_of("ipFamilies"), "spec.ipFamilies lists two families but ipFamilyPolicy is "
                                                       "SingleStack; use PreferDualStack or RequireDualStack")
        return tuple(families)
    # Kubernetes fills ipFamilies from the cluster's families; standalone has no
    # cluster, so infer: dual-stack policies get both, a requested IP its own.
    if policy is not IPFamilyPolicy.SINGLE_STACK:
        return (4, 6)
    if requested:
        return tuple(sorted({ip.version for ip in requested}))
    return (4,)


def _family_names(families: tuple[int, ...]) -> str:
    return ", ".join(f"IPv{f}" for f in families)


def _enum(fields: Fields, key: str, kind: type[E], default: E) -> E:
    text = fields.get_str(key)
    if text is None:
        return default
    for member in kind:
        if member.value == text:
            return member
    fields.ctx.error(fields.line_of(key), f"{fields.path_of(key)}: unknown value {describe(text)}; use one of "
                                          f"{', '.join(m.value for m in kind)}")
    return default


def _port(fields: Fields) -> ServicePort | None:
    port = fields.get_int("port", None, low=1, high=65535)
    protocol = fields.get_str("protocol", "TCP") or "TCP"
    if protocol not in _PROTOCOLS:
        fields.ctx.error(fields.line_of("protocol"), f"{fields.path_of('protocol')}: unknown protocol "
                                                     f"{describe(protocol)}; use TCP, UDP or SCTP")
    if port is None:
        if not fields.has("port"):
            fields.ctx.error(fields.line, f"{fields.path}: port is missing; set e.g. port: 80")
        return None
    return ServicePort(name=fields.get_str("name", "") or "", protocol=protocol, port=port)


def parse_node(top: Fields, name: str, labels: dict[str, str]) -> Node:
    status = top.get_map("status")
    addresses: list[IPAddress] = []
    unavailable, ready = False, True
    if status is not None:
        for entry in status.get_maps("addresses"):
            if entry.get_str("type") != "InternalIP":
                continue
            text = entry.get_str("address", "") or ""
            ip = parse_ip(text)
            if ip is None:
                entry.ctx.error(entry.line_of("address"), f"{entry.path_of('address')}: {describe(text)} is not an "
                                                          "IP address; write the node's InternalIP, e.g. 10.0.10.1")
            else:
                addresses.append(ip)
        for condition in status.get_maps("conditions"):
            kind, state = condition.get_str("type"), condition.get_str("status")
            if kind == "NetworkUnavailable":
                unavailable = state == "True"
            elif kind == "Ready":
                ready = state == "True"
    return Node(name=name, labels=labels_of(labels), addresses=tuple(addresses), network_unavailable=unavailable,
                ready=ready, source=top.ctx.source())


def parse_endpoint_slice(top: Fields, name: str, namespace: str, labels: dict[str, str]) -> EndpointSlice | None:
    service_name = labels.get(SERVICE_NAME_LABEL)
    if not service_name:
        top.ctx.warning(top.line, f"has no label {SERVICE_NAME_LABEL}, so it belongs to no Service and is ignored; "
                                  "add the label naming its Service")
        return None
    fqdn = top.get_str("addressType") == "FQDN"
    endpoints: list[Endpoint] = []
    for entry in top.get_maps("endpoints"):
        ips: list[IPAddress] = []
        for text, path, line in entry.get_strs("addresses"):
            ip = None if fqdn else parse_ip(text)
            if ip is None and not fqdn:
                entry.ctx.error(line, f"{path}: {describe(text)} is not an IP address")
            elif ip is not None:
                ips.append(ip)
        conditions = entry.get_map("conditions")
        ready = conditions.get_bool("ready", True) if conditions else True
        serving = conditions.get_bool("serving", ready) if conditions else ready
        endpoints.append(Endpoint(addresses=tuple(ips), node_name=entry.get_str("nodeName"), ready=ready,
                                  serving=serving))
    return EndpointSlice(namespace=namespace, name=name, service_name=service_name, endpoints=tuple(endpoints),
                         source=top.ctx.source())
