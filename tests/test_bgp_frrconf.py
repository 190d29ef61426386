"""The bgp plugin's FRR configuration, one golden file per MetalLB field (tests/fixtures/bgp/*.conf).

Each case is MetalLB YAML parsed by metalloid's own parser, planned for node
n1 and rendered; the text must equal its golden file (regenerate with
METALLOID_UPDATE_GOLDEN=1 and review the diff), and FRR's own parser must
accept it (`vtysh --dryrun`, no daemon needed).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from plugins.bgp.frrconf import render
from plugins.bgp.planning import plan
from supervisor.allocating.results import Assignment
from supervisor.announcing.api import AnnouncerView
from supervisor.config.model import ServiceKey
from supervisor.config.parsing import parse_objects

GOLDEN = Path(__file__).parent / "fixtures" / "bgp"
WEB = ServiceKey(namespace="default", name="web")

BASE = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool, namespace: metallb-system}
spec: {addresses: [192.0.2.0/24, "2001:db8::/64"]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: a}}
status: {addresses: [{type: InternalIP, address: 198.51.100.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {rack: b}}
status: {addresses: [{type: InternalIP, address: 198.51.100.12}]}
"""

PEER = """
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: {name}, namespace: metallb-system}}
spec:
  myASN: 64500
  peerAddress: {address}
{extra}"""

ADV = """
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: {name}, namespace: metallb-system}}
spec:
  ipAddressPools: [pool]
{extra}"""


def peer(extra: str = "  peerASN: 64501\n", name: str = "tor", address: str = "198.51.100.1") -> str:
    return PEER.format(name=name, address=address, extra=extra)


def adv(extra: str = "", name: str = "adv") -> str:
    return ADV.format(name=name, extra=extra)


BFD = """
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: 100, transmitInterval: 150, detectMultiplier: 3, echoMode: true, echoInterval: 60,
       passiveMode: true, minimumTtl: 250}
"""

COMMUNITY = """
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities:
    - {name: no-advertise, value: "65535:65282"}
"""

CASES: dict[str, list[str]] = {
    "basic": [peer(), adv()],
    "peer-port": [peer("  peerASN: 64501\n  peerPort: 1179\n"), adv()],
    "ebgp-multihop": [peer("  peerASN: 64501\n  ebgpMultiHop: true\n"), adv()],
    "source-address": [peer("  peerASN: 64501\n  sourceAddress: 198.51.100.11\n"), adv()],
    "router-id": [peer("  peerASN: 64501\n  routerID: 10.10.10.10\n"), adv()],
    "ibgp": [peer("  peerASN: 64500\n"), adv()],
    "dynamic-asn-internal": [peer("  dynamicASN: internal\n"), adv()],
    "dynamic-asn-external": [peer("  dynamicASN: external\n"), adv()],
    "timers": [peer("  peerASN: 64501\n  holdTime: 30s\n  keepaliveTime: 10s\n  connectTime: 5s\n"), adv()],
    "hold-time-only": [peer("  peerASN: 64501\n  holdTime: 15s\n"), adv()],
    "password": [peer("  peerASN: 64501\n  password: s3cret\n"), adv()],
    "password-secret": [peer("  peerASN: 64501\n  passwordSecret: {name: tor-pw, namespace: metallb-system}\n"),
                        adv()],
    "password-secret-unreadable": [
        peer("  peerASN: 64501\n  passwordSecret: {name: missing, namespace: metallb-system}\n"), adv()],
    "bfd-profile": [peer("  peerASN: 64501\n  bfdProfile: fast\n"), adv(), BFD],
    "bfd-profile-missing": [peer("  peerASN: 64501\n  bfdProfile: nowhere\n"), adv()],
    "graceful-restart": [peer("  peerASN: 64501\n  enableGracefulRestart: true\n"), adv()],
    "vrf": [peer("  peerASN: 64501\n  vrf: red\n"), adv()],
    "communities": [peer(), adv("  communities: [no-advertise, \"64500:100\", \"large:64500:1:2\"]\n"), COMMUNITY],
    "local-pref": [peer("  peerASN: 64500\n"), adv("  localPref: 150\n")],
    "aggregation": [peer(), adv("  aggregationLength: 24\n  aggregationLengthV6: 64\n")],
    "ipv6-peer": [peer(address="2001:db8:ff::1"), adv()],
    "two-peers-two-advertisements": [
        peer(), peer(name="spine", address="198.51.100.2"),
        adv("  peers: [spine]\n  localPref: 200\n", name="to-spine"),
        adv("  peers: [tor]\n  communities: [\"64500:1\"]\n", name="to-tor")],
    "peer-node-selector-excludes": [
        peer("  peerASN: 64501\n  nodeSelectors: [{matchLabels: {rack: b}}]\n"), adv()],
    "advertisement-node-selector-excludes": [peer(), adv("  nodeSelectors: [{matchLabels: {rack: b}}]\n")],
    "no-routes": [peer()],
    "dual-stack-address-family": [peer("  peerASN: 64501\n  dualStackAddressFamily: true\n"), adv()],
    "ipv6-peer-dual-stack": [peer("  peerASN: 64501\n  dualStackAddressFamily: true\n", address="2001:db8:ff::1"),
                             adv()],
    "ipv6-peer-ibgp": [peer("  peerASN: 64500\n", address="2001:db8:ff::1"), adv()],
    "disable-mp": [peer("  peerASN: 64501\n  disableMP: true\n"), adv()],
    "local-asn": [peer("  peerASN: 64501\n  localASN: 64999\n"), adv()],
    "interface-unnumbered": [PEER.format(name="tor", address="null", extra="  peerASN: 64501\n  interface: eth1\n")
                             .replace("  peerAddress: null\n", ""), adv()],
    "two-peers-one-per-family": [peer(), peer(name="tor6", address="2001:db8:ff::1"), adv()],
}


def rendered(case: str) -> str:
    docs = [d for text in (BASE, *CASES[case]) for d in yaml.safe_load_all(text) if d]
    config, diagnostics = parse_objects(docs)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    if case != "disable-mp":
        assert not diagnostics, diagnostics
    view = AnnouncerView(node_name="n1", mode="standalone", config=config, members=frozenset({"n1", "n2"}),
                         assignments=(Assignment(service=WEB, pool="pool",
                                                 ips=(ipaddress.ip_address("192.0.2.10"),
                                                      ipaddress.ip_address("2001:db8::10"))),))
    passwords = {"tor": "from-secret"} if case == "password-secret" else {}
    result = render(plan(view), config, hostname="n1", passwords=passwords)
    skipped = "".join(f"! skipped {peer}: {why}\n" for peer, why in result.skipped)
    return skipped + result.text


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    text = rendered(case)
    path = GOLDEN / f"{case}.conf"
    if os.environ.get("METALLOID_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; rerun with METALLOID_UPDATE_GOLDEN=1 and review"


@pytest.mark.parametrize("case", sorted(CASES))
def test_frr_accepts_it(case: str, tmp_path: Path) -> None:
    vtysh = shutil.which("vtysh")
    assert vtysh, "vtysh is missing: ./dev setup installs Debian's frr package"
    conf = tmp_path / "frr.conf"
    conf.write_text(rendered(case))
    done = subprocess.run([vtysh, "--dryrun", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_same_plan_renders_the_same_text() -> None:
    # The plugin reloads FRR only when the text changes: it must be deterministic.
    assert rendered("two-peers-two-advertisements") == rendered("two-peers-two-advertisements")


def test_only_the_selected_peer_gets_each_prefix() -> None:
    text = rendered("two-peers-two-advertisements")
    spine_out = text.split("route-map metalloid-spine-out permit 10", 1)[1].split("exit", 1)[0]
    assert "set local-preference 200" in spine_out and "community" not in spine_out
    tor_out = text.split("route-map metalloid-tor-out permit 10", 1)[1].split("exit", 1)[0]
    assert "set community 64500:1 additive" in tor_out and "local-preference" not in tor_out


def test_unreadable_secret_skips_the_peer_and_says_which() -> None:
    text = rendered("password-secret-unreadable")
    assert "metallb-system/missing could not be read" in text
    assert "neighbor 198.51.100.1" not in text


def test_disable_mp_is_deprecated_and_changes_nothing() -> None:
    # MetalLB's FRR mode: one family per session is the default, disableMP has no effect.
    assert rendered("disable-mp") == rendered("basic")
    docs = [d for text in (BASE, *CASES["disable-mp"]) for d in yaml.safe_load_all(text) if d]
    _, diagnostics = parse_objects(docs)
    assert [d.message for d in diagnostics if not d.is_error] == [
        "spec.disableMP is deprecated and has no effect: a session carries only its address's family unless "
        "spec.dualStackAddressFamily is true; remove it"]


def test_a_session_gets_its_own_family_unless_dual_stack() -> None:
    basic = rendered("basic")
    assert "address-family ipv6 unicast" not in basic and "2001:db8::10" not in basic
    dual = rendered("dual-stack-address-family")
    v6 = dual.split(" address-family ipv6 unicast", 1)[1].split("exit-address-family", 1)[0]
    assert "network 2001:db8::10/128" in v6 and "neighbor 198.51.100.1 activate" in v6
    both = rendered("two-peers-one-per-family")
    v4 = both.split(" address-family ipv4 unicast", 1)[1].split("exit-address-family", 1)[0]
    v6 = both.split(" address-family ipv6 unicast", 1)[1].split("exit-address-family", 1)[0]
    assert "neighbor 198.51.100.1 activate" in v4 and "2001:db8:ff::1" not in v4
    assert "neighbor 2001:db8:ff::1 activate" in v6 and "198.51.100.1 " not in v6


def test_local_asn_and_unnumbered_sessions() -> None:
    assert " neighbor 198.51.100.1 local-as 64999 no-prepend replace-as\n" in rendered("local-asn")
    unnumbered = rendered("interface-unnumbered")
    assert " neighbor eth1 interface remote-as 64501\n" in unnumbered
    assert unnumbered.count("  neighbor eth1 activate\n") == 2  # both families, as MetalLB does
