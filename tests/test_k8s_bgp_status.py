"""ServiceBGPStatus from what the bgp announcer really configures, written per node as MetalLB does (fake API)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from plugins.bgp.announcer import BGPAnnouncer
from plugins.bgp.frr import FRR, FRRSettings
from supervisor.announcing.api import Announcement, AnnouncerState, announcer_state
from supervisor.config.model import ServiceKey
from supervisor.kubernetes.bgpstatus import BGPStatusWriter, wanted_bgp_statuses
from supervisor.kubernetes.client import RawClient
from supervisor.plugin_testing import FakeHost, config_from_yaml, make_view
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import running_speaker_worker, service
from tests.runtime_helpers import wait_for

NS = "metallb-system"
WEB = ServiceKey(namespace="default", name="web")
DNS = ServiceKey(namespace="default", name="dns")

CONFIG = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv}
spec: {ipAddressPools: [pool]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor-a}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor-b}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.2}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: locked}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.3, passwordSecret: {name: missing, namespace: metallb-system}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: 192.0.2.10, ports: [{port: 80}]}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
"""


def bgp_state(node: str, *entries: tuple[ServiceKey, str, tuple[str, ...]]) -> AnnouncerState:
    return AnnouncerState(protocol="bgp", announcements=tuple(
        Announcement(service=key, ip=ipaddress.ip_address(ip), protocol="bgp", node=node, peers=peers)
        for key, ip, peers in entries
    ))  # fmt: skip


def statuses(api: FakeApiServer) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(node label, status.node, "ns/name", peers) of every ServiceBGPStatus."""
    found = []
    for obj in api.list("ServiceBGPStatus", NS):
        labels, status = obj["metadata"]["labels"], obj.get("status") or {}
        assert obj["metadata"]["name"].startswith("bgp-")
        if not status:
            found.append(("(created, status not written yet)", "", "", ()))
            continue
        assert (labels["metallb.io/service-namespace"], labels["metallb.io/service-name"]) == (
            status.get("serviceNamespace"), status.get("serviceName"))
        found.append((labels["metallb.io/node"], status["node"],
                      f"{status['serviceNamespace']}/{status['serviceName']}", tuple(status.get("peers") or ())))
    return sorted(found)


def test_the_peers_come_from_the_bgp_announcers_own_status_and_a_skipped_peer_is_not_one(tmp_path: Path) -> None:
    """The real plugin's status() → AnnouncerState → wanted statuses: the route goes to tor-a and tor-b; the peer
    whose passwordSecret cannot be read is not configured in FRR, so it is not listed (MetalLB: no session)."""
    config = config_from_yaml(CONFIG)
    frr = FRR(FRRSettings(run_dir=tmp_path / "frr", manage_daemons=False, secrets_dir=tmp_path / "secrets"))
    announcer = BGPAnnouncer(FakeHost("n1"), frr=frr)  # not started: no worker, no FRR contacted
    announcer.update(make_view(config, "n1"))
    payload = announcer.status()
    # The contract's "ip" is the Service's IP (an AnnouncerState skips anything else), the route's prefix beside it.
    assert sorted((a["ip"], a["prefix"], a["reason"]) for a in payload["announcements"]) == [
        ("192.0.2.10", "192.0.2.10/32", f"advertised to BGPPeer {peer} (session not established)")
        for peer in ("locked", "tor-a", "tor-b")]
    state = announcer_state("bgp", payload)
    assert wanted_bgp_statuses([state]) == {WEB: ("tor-a", "tor-b")}
    assert sorted(p for a in payload["announcements"] for p in a.get("peers", [])) == ["tor-a", "tor-b"]


def test_wanted_statuses_merge_the_peers_of_every_ip_and_ignore_other_protocols() -> None:
    state = bgp_state("n1", (WEB, "192.0.2.10", ("tor-b",)), (WEB, "2001:db8::10", ("tor-a",)),
                      (DNS, "192.0.2.11", ()))  # fmt: skip
    layer2 = AnnouncerState(protocol="layer2", announcements=(
        Announcement(service=DNS, ip=ipaddress.ip_address("192.0.2.11"), protocol="layer2", node="n1",
                     interfaces=("eth0",)),))  # fmt: skip
    # dns has no peer (its only peer is not configured): no ServiceBGPStatus, as MetalLB deletes it.
    assert wanted_bgp_statuses([state, layer2]) == {WEB: ("tor-a", "tor-b")}


def test_each_node_writes_its_own_status_on_change_only_and_never_touches_another_nodes(
    api: FakeApiServer, client: RawClient
) -> None:
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "speaker-n1", "namespace": NS}})
    pod = api.get("Pod", NS, "speaker-n1")
    n1 = BGPStatusWriter(client, namespace=NS, node="n1", owner=lambda: pod)
    n2 = BGPStatusWriter(client, namespace=NS, node="n2")
    assert n1.update({WEB: ("tor-a", "tor-b"), DNS: ("tor-a",)})
    assert n2.update({WEB: ("tor-a",)})
    # Every node advertises in BGP mode: both statuses of web stand (layer 2 would keep one).
    assert statuses(api) == [("n1", "n1", "default/dns", ("tor-a",)), ("n1", "n1", "default/web", ("tor-a", "tor-b")),
                             ("n2", "n2", "default/web", ("tor-a",))]  # fmt: skip
    owned = [o for o in api.list("ServiceBGPStatus", NS) if o["metadata"]["labels"]["metallb.io/node"] == "n1"]
    assert {str(o["metadata"].get("ownerReferences")) for o in owned} == {str(
        [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-n1", "uid": pod["metadata"]["uid"]}])}
    requests = len(api.requests)
    assert n1.update({WEB: ("tor-a", "tor-b"), DNS: ("tor-a",)})
    assert len(api.requests) == requests  # unchanged: not even a list
    # tor-b's route goes (fewer peers: the list shrinks), dns is no longer advertised: its status goes.
    assert n1.update({WEB: ("tor-a",)})
    assert statuses(api) == [("n1", "n1", "default/web", ("tor-a",)), ("n2", "n2", "default/web", ("tor-a",))]
    # n1 lists only its own objects.
    from urllib.parse import parse_qs

    listed = [parse_qs(r.query).get("labelSelector") for r in api.requests[requests:] if r.method == "GET"]
    assert listed == [["metallb.io/node=n1"]]
    assert n1.update({})
    assert statuses(api) == [("n2", "n2", "default/web", ("tor-a",))]


def test_a_restarted_speaker_patches_what_it_wrote_before_and_deletes_its_leftovers(
    api: FakeApiServer, client: RawClient
) -> None:
    BGPStatusWriter(client, namespace=NS, node="n1").update({WEB: ("tor-a",), DNS: ("tor-a",)})
    before = {o["metadata"]["name"] for o in api.list("ServiceBGPStatus", NS)
              if o["metadata"]["labels"]["metallb.io/service-name"] == "web"}  # fmt: skip
    assert BGPStatusWriter(client, namespace=NS, node="n1").update({WEB: ("tor-a", "tor-b")})
    assert statuses(api) == [("n1", "n1", "default/web", ("tor-a", "tor-b"))]
    assert {o["metadata"]["name"] for o in api.list("ServiceBGPStatus", NS)} == before  # patched, not new


def test_a_status_not_written_in_an_outage_is_written_when_the_api_is_back(api: FakeApiServer,
                                                                            client: RawClient) -> None:  # fmt: skip
    writer = BGPStatusWriter(client, namespace=NS, node="n1")
    with api.outage("503"):
        assert not writer.update({WEB: ("tor-a",)})
    assert writer.update({WEB: ("tor-a",)})
    assert statuses(api) == [("n1", "n1", "default/web", ("tor-a",))]


def test_what_metalloid_writes_is_valid_against_the_servicebgpstatus_crd(api: FakeApiServer,
                                                                          client: RawClient) -> None:  # fmt: skip
    from tests.deploy_support import admission_errors, find, kustomize

    BGPStatusWriter(client, namespace=NS, node="n1").update({WEB: ("tor-a", "tor-b")})
    crd = find(kustomize("."), "CustomResourceDefinition", "servicebgpstatuses.metallb.io")
    [obj] = api.list("ServiceBGPStatus", NS)
    assert admission_errors(crd, obj) == []
    # The check can fail: a peer that is not a string is refused.
    assert admission_errors(crd, {**obj, "status": {**obj["status"], "peers": [1]}}) != []


def test_the_speaker_worker_writes_service_bgp_status_from_the_routed_announcer_state(api: FakeApiServer) -> None:
    """The whole speaker watcher worker in a thread: a routed bgp AnnouncementsChanged → ServiceBGPStatus."""
    from supervisor.messages import AnnouncementsChanged

    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create(service("web"))
    with running_speaker_worker(api, namespace=NS) as inbox:
        inbox.put(AnnouncementsChanged(worker="announcer-bgp",
                                       state=bgp_state("n1", (WEB, "192.0.2.10", ("tor-a", "tor-b")))))
        wait_for(lambda: statuses(api) == [("n1", "n1", "default/web", ("tor-a", "tor-b"))],
                 what="the ServiceBGPStatus")
        inbox.put(AnnouncementsChanged(worker="announcer-bgp", state=AnnouncerState(protocol="bgp")))
        wait_for(lambda: statuses(api) == [], what="the ServiceBGPStatus deleted once the routes are withdrawn")
