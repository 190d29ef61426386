"""MetalLB's dual-stack "family" Events, from the Service object as MetalLB reads it.

MetalLB's controller (controller/service.go, internal/ipfamily) checks a
Service's families before it allocates and reports what it cannot make sense
of with three Warning reasons. metalloid meets the same situations on the
same objects, so it says the same (reason and text), as pure functions of the
Service object and the IPs its status holds:

- `not enough clusterips`: ipFamilyPolicy RequireDualStack with fewer than two
  clusterIPs. MetalLB gives such a Service no IP and says only this; so does
  metalloid (its allocator leaves it pending, the writer says this instead of
  AllocationFailed).
- `nolbIPsIPFamily`: the IPs in status.loadBalancer.ingress are not one IP or
  one IPv4 and one IPv6 (two of a family, three IPs, an unparsable one).
  MetalLB carries on and replaces them, and so does metalloid.
- `noclusterIPsIPFamily`: the clusterIPs (or the clusterIP) are not one IP or
  one of each family, while the Service holds IPs. MetalLB stops there; the
  API server never writes such clusterIPs, and metalloid, which does not use
  clusterIPs to decide, only reports it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from supervisor.kubernetes.events import go_quote

NOT_ENOUGH_CLUSTER_IPS = "not enough clusterips"
NO_LB_IPS_FAMILY = "nolbIPsIPFamily"
NO_CLUSTER_IPS_FAMILY = "noclusterIPsIPFamily"
REASONS = (NOT_ENOUGH_CLUSTER_IPS, NO_LB_IPS_FAMILY, NO_CLUSTER_IPS_FAMILY)


def _go_q(texts: Sequence[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(t) for t in texts) + "]"


def _go_v(texts: Sequence[str]) -> str:
    """Go's %v of a []string: [a b]."""
    return "[" + " ".join(texts) + "]"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def family_problem(texts: Sequence[str]) -> str | None:
    """MetalLB's ipfamily.ForAddresses error for `texts`, None when they are one IP or one of each family."""
    if len(texts) not in (1, 2):
        return f"IPFamilyForAddresses: invalid ips length {len(texts)} {_go_q(texts)}"
    versions = [ip.version for t in texts if (ip := _ip(t)) is not None]
    if len(versions) < len(texts):
        return f"IPFamilyForAddresses: Invalid address {_go_q(texts)}"
    if len(versions) == 2 and versions[0] == versions[1]:
        return f"IPFamilyForAddresses: same address family {_go_q(texts)}"
    return None


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def family_events(obj: Mapping[str, Any], held: Sequence[str]) -> list[tuple[str, str]]:
    """(reason, message) of each Warning MetalLB writes for `obj`, whose status holds `held`, in MetalLB's order."""
    spec = obj.get("spec") or {}
    cluster_ips = _strings(spec.get("clusterIPs"))
    cluster_ip = str(spec.get("clusterIP") or "")
    if not cluster_ips and not cluster_ip:
        return []  # MetalLB waits for the API server to assign one, silently
    if spec.get("ipFamilyPolicy") == "RequireDualStack" and len(cluster_ips) < 2:
        return [(NOT_ENOUGH_CLUSTER_IPS, f"Service requires dual stack but not enough clusterips {_go_v(cluster_ips)}")]
    out: list[tuple[str, str]] = []
    if not held:
        return out
    # MetalLB parses the status IPs with net.ParseIP and prints them back: "<nil>" for one it cannot read.
    shown = [str(ip) if (ip := _ip(t)) is not None else "<nil>" for t in held]
    problem = family_problem(shown)
    if problem is not None:
        out.append((NO_LB_IPS_FAMILY, f"Failed to retrieve LBIPs IPFamily for {_go_q(shown)}: {problem}"))
    problem = family_problem(cluster_ips or [cluster_ip])
    if problem is not None:
        out.append((NO_CLUSTER_IPS_FAMILY, f"Failed to retrieve ClusterIPs IPFamily for {_go_q(cluster_ips)} "
                                           f"{cluster_ip}: {problem}"))
    return out
