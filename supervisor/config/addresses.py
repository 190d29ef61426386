"""Parse one `IPAddressPool.spec.addresses` entry into an `AddressRange`.

MetalLB accepts two spellings: a CIDR (every address of the prefix, network
and broadcast included; host bits are masked away, as Go's net.ParseCIDR
does, so `198.51.100.10/24` is 198.51.100.0/24) and an inclusive `first-last`
range. metalloid also takes a single IP, which MetalLB refuses ("invalid
CIDR"); `address_note` says so, and notes masked host bits, for warnings.
This module turns the text into a range or into a message saying what is
wrong and how to fix it; it never raises and never enumerates addresses, so
an IPv6 /64 costs the same as a /32.
"""

from __future__ import annotations

import ipaddress

from supervisor.config.model import AddressRange, IPAddress


def parse_ip(text: str) -> IPAddress | None:
    """An IPv4 or IPv6 address, or None.

    Refused like Kubernetes' own IP parsing does: zone ids (`fe80::1%eth0`) and
    IPv4-mapped IPv6 (`::ffff:10.0.0.1`, which would be one IP in two families).
    """
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None
    return ip


def not_an_ip_hint(text: str) -> str:
    """Why `text` is refused as an IP, for messages that already say it is not one."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f" (an IPv4-mapped IPv6 address: write {ip.ipv4_mapped})"
    return ""


def parse_address_range(text: str) -> AddressRange | str:
    """The range `text` stands for, or an error message naming `text` and the fix."""
    spelled = text.strip()
    if not spelled:
        return "empty address entry; write a CIDR (10.0.10.0/24), a range (10.0.10.10-10.0.10.99) or one IP"
    if "/" in spelled:
        return _parse_cidr(spelled)
    if "-" in spelled:
        return _parse_dash_range(spelled)
    ip = parse_ip(spelled)
    if ip is None:
        return (
            f"{spelled!r} is not an IP address, a CIDR or a range{not_an_ip_hint(spelled)}; "
            "write e.g. 10.0.10.0/24, 10.0.10.10-10.0.10.99 or 10.0.10.5"
        )
    return AddressRange(first=ip, last=ip, text=spelled)


def _parse_cidr(text: str) -> AddressRange | str:
    try:
        # Go's net.ParseCIDR (MetalLB) takes a decimal prefix length only, not a netmask.
        if not (text.partition("/")[2].isascii() and text.partition("/")[2].isdigit()):
            raise ValueError(text)
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return (
            f"{text!r} is not a valid CIDR; write an address and a prefix length "
            "within the family (0-32 for IPv4, 0-128 for IPv6), e.g. 10.0.10.0/24"
        )
    # Host bits set (198.51.100.10/24): the whole prefix, as MetalLB takes it.
    return AddressRange(first=network.network_address, last=network.broadcast_address, text=text)


def address_note(text: str) -> str | None:
    """A warning for an entry that parses but may not mean what it says, or None.

    Host bits in a CIDR: MetalLB (and metalloid) take the whole prefix, which a
    user writing a host address rarely means. A single IP: metalloid reads it
    as a /32 (/128), MetalLB refuses the pool.
    """
    spelled = text.strip()
    if "/" in spelled:
        try:
            network = ipaddress.ip_network(spelled, strict=False)
        except ValueError:
            return None
        if str(network) != _normalised(spelled):
            return (f"{spelled!r} has host bits set; like MetalLB, metalloid takes the whole prefix {network} "
                    f"({network.network_address}-{network.broadcast_address}). Write {network} to say so, or a "
                    f"range such as {_as_range_hint(spelled, network)} for part of it")
        return None
    if "-" not in spelled and parse_ip(spelled) is not None:
        ip = parse_ip(spelled)
        length = 32 if ip is not None and ip.version == 4 else 128
        return (f"{spelled!r} is a single IP: metalloid takes it as {spelled}/{length}, but MetalLB refuses the "
                f"pool (invalid CIDR); write {spelled}/{length} to keep the file valid for both")
    return None


def _normalised(text: str) -> str:
    address, _, prefix = text.partition("/")
    ip = parse_ip(address)
    if ip is None or not prefix.strip().isdigit():
        return text
    return f"{ip}/{int(prefix)}"


def _as_range_hint(text: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    first = parse_ip(text.partition("/")[0]) or network.network_address
    return f"{first}-{network.broadcast_address}"


def _parse_dash_range(text: str) -> AddressRange | str:
    left, _, right = text.partition("-")
    first, last = parse_ip(left), parse_ip(right)
    if first is None or last is None:
        bad = left.strip() if first is None else right.strip()
        return f"range {text!r}: {bad!r} is not an IP address; write FIRST-LAST, e.g. 10.0.10.10-10.0.10.99"
    if first.version != last.version:
        return (
            f"range {text!r} mixes IPv{first.version} and IPv{last.version}; "
            "a range stays within one family, write one entry per family"
        )
    if int(last) < int(first):
        return f"range {text!r} is reversed ({first} is after {last}); write {last}-{first}"
    return AddressRange(first=first, last=last, text=text)
