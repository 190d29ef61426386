"""MetalLB's layer 2 node-selection tests (speaker/layer2_controller_test.go, internal/k8s/epslices) against metalloid.

MetalLB asks each speaker `ShouldAnnounce` and expects "" (this node
announces) or a reason ("notOwner", "noMatchingAdvertisement"). metalloid's
answer is the layer 2 plan every node computes (`plugins.layer2.planning.plan`):
whether this node owns the IP. Each case builds the Kubernetes objects the Go
test describes (an L2Advertisement's `Nodes` map becomes nodeSelectors on
`kubernetes.io/hostname`; EndpointSlices are parsed from API objects so their
conditions mean what the API says), in Kubernetes mode (every EndpointSlice is
known), and checks both speakers.

Ported: TestIsConditionReadyOrServing, TestUsableNodesEPSlices,
TestUsableNodesEPSlicesWithSpeakerlistDisabled, TestShouldAnnounceEPSlices,
TestShouldAnnounceFromNodes, TestClusterPolicy, TestIPAdvertisementFor, and
the hash-order rows of TestSortL2Candidates.
Not ported, because metalloid does not support the L2Advertisement fields
they test (listed in docs/migrating-from-metallb.md): TestL2ServiceSelectors,
TestL2SharedIPWithServiceSelectors, TestL2AdsForService,
TestL2ElectionConsistentButAdsPerNode, TestL2NoMatchingAdForServiceAndNode,
TestL2ServiceSelectorFiltersCandidateNodes (spec.serviceSelectors),
TestPreferredScoresFor, TestShouldAnnouncePreferredNode,
TestShouldAnnounceSplitBrainWithMixedAds, TestShouldAnnouncePreferredNodeFailover
and the scored rows of TestSortL2Candidates (spec.preferredNodeSelectors).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from plugins.layer2.planning import plan
from supervisor.api import AnnouncerView, Assignment
from supervisor.config.model import (
    EXCLUDE_FROM_LB_LABEL,
    AddressRange,
    Config,
    ExternalTrafficPolicy,
    IPAddressPool,
    L2Advertisement,
    LabelSelector,
    Node,
    SelectorOperator,
    SelectorRequirement,
    Service,
    ServiceKey,
    labels_of,
)
from supervisor.config.parsing import parse_objects
from supervisor.electing.election import NOT_SELECTED, endpoint_can_serve, rank

GO = "speaker/layer2_controller_test.go"
NODES = ("iris1", "iris2")
HOSTNAME = "kubernetes.io/hostname"
POOL = IPAddressPool(name="default", addresses=(AddressRange(first=ipaddress.ip_address("10.20.30.0"),
                                                             last=ipaddress.ip_address("10.20.30.255"),
                                                             text="10.20.30.0/24"),))  # fmt: skip

# An endpoint as (node, ready, serving); None means the condition is absent.
Ep = tuple[str | None, bool | None, bool | None]


def slice_object(service: str, endpoints: tuple[Ep, ...]) -> dict[str, Any]:
    eps = []
    for node, ready, serving in endpoints:
        conditions: dict[str, bool] = {}
        if ready is not None:
            conditions["ready"] = ready
        if serving is not None:
            conditions["serving"] = serving
        entry: dict[str, Any] = {"addresses": ["2.3.4.5"], "conditions": conditions}
        if node is not None:
            entry["nodeName"] = node
        eps.append(entry)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": eps}  # fmt: skip


def advertisement(index: int, nodes: tuple[str, ...], interfaces: tuple[str, ...] = ()) -> L2Advertisement:
    """MetalLB's resolved `Nodes` map as the nodeSelector that selects exactly those nodes."""
    selector = LabelSelector(match_expressions=(
        SelectorRequirement(key=HOSTNAME, operator=SelectorOperator.IN, values=nodes),))  # fmt: skip
    return L2Advertisement(name=f"l2-{index}", node_selectors=(selector,), interfaces=interfaces)


@dataclass(frozen=True, kw_only=True)
class Svc:
    ip: str
    endpoints: tuple[Ep, ...]
    local: bool = True


@dataclass(frozen=True, kw_only=True)
class Case:
    desc: str
    services: tuple[Svc, ...]
    # ip -> (iris1's answer, iris2's answer); "" means "announces".
    expect: dict[str, tuple[str, str]]
    ads: tuple[tuple[str, ...], ...] = (NODES,)
    excluded: tuple[str, ...] = ()
    differs: str = ""
    nodes: tuple[str, ...] = field(default=NODES)


def build(case: Case) -> tuple[Config, tuple[Assignment, ...]]:
    services, objects, assignments = [], [], []
    for number, svc in enumerate(case.services, start=1):
        name = f"svc{number}"
        services.append(Service(namespace="default", name=name, external_traffic_policy=(
            ExternalTrafficPolicy.LOCAL if svc.local else ExternalTrafficPolicy.CLUSTER)))  # fmt: skip
        objects.append(slice_object(name, svc.endpoints))
        assignments.append(Assignment(service=ServiceKey(namespace="default", name=name),
                                      ips=(ipaddress.ip_address(svc.ip),), pool="default"))  # fmt: skip
    parsed, diagnostics = parse_objects(objects)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    nodes = tuple(
        Node(name=n, labels=labels_of({HOSTNAME: n, **({EXCLUDE_FROM_LB_LABEL: ""} if n in case.excluded else {})}))
        for n in case.nodes
    )
    config = Config(pools=(POOL,), l2_advertisements=tuple(advertisement(i, a) for i, a in enumerate(case.ads)),
                    services=tuple(services), nodes=nodes, endpoint_slices=parsed.endpoint_slices,
                    endpoints_listed=True)  # fmt: skip
    return config, tuple(assignments)


def answers(case: Case, node: str) -> dict[str, str]:
    """metalloid's answer on `node` per IP: "" when it owns the IP, else the MetalLB reason it corresponds to."""
    config, assignments = build(case)
    view = AnnouncerView(node_name=node, mode="kubernetes", config=config, assignments=assignments,
                         members=frozenset(case.nodes))  # fmt: skip
    result = plan(view)
    owned = {str(o.ip) for o in result.owned}
    out = {}
    for entry in result.elections:
        ip = str(entry.ip)
        excluded = dict(entry.election.excluded) if entry.election else {}
        if ip in owned:
            out[ip] = ""
        elif excluded.get(node) == NOT_SELECTED:
            out[ip] = "noMatchingAdvertisement"
        else:
            out[ip] = "notOwner"
    return out


ONE = "10.20.30.1"
TWO = "10.20.30.2"

EP_SLICES = [
    Case(desc="One service, two endpoints, one host, controller 1 should announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris1", True, None))),),
         expect={ONE: ("", "notOwner")}),
    Case(desc="One service, two endpoints, one host, neither endpoint is ready, no controller should announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", False, None), ("iris1", False, None))),),
         expect={ONE: ("notOwner", "notOwner")}),
    Case(desc="One service, two endpoints across two hosts, controller2 should announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", False, True))),),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service, two endpoints across two hosts, neither endpoint is ready, no controllers should "
              "announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", False, None), ("iris2", False, None))),),
         expect={ONE: ("notOwner", "notOwner")}),
    Case(desc="One service, two endpoints across two hosts, controller 2 is not ready, controller 1 should announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", False, None))),),
         expect={ONE: ("", "notOwner")}),
    Case(desc="Two services each with two endpoints across across two hosts, each controller should announce one "
              "service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None))),
                   Svc(ip=TWO, endpoints=(("iris1", True, None), ("iris2", True, None)))),
         expect={ONE: ("notOwner", ""), TWO: ("", "notOwner")}),
    Case(desc="Two services each with two endpoints across across two hosts, one service has an endpoint not ready "
              "on controller 2, each controller should announce one service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None))),
                   Svc(ip=TWO, endpoints=(("iris1", True, None), ("iris2", False, None)))),
         expect={ONE: ("notOwner", ""), TWO: ("", "notOwner")}),
    Case(desc="Two services each with two endpoints across across two hosts, one service has an endpoint not ready "
              "on controller 1, the other service has an endpoint not ready on controller 2",
         services=(Svc(ip=ONE, endpoints=(("iris2", True, None), ("iris1", False, None))),
                   Svc(ip=TWO, endpoints=(("iris1", True, None), ("iris2", False, None)))),
         expect={ONE: ("notOwner", ""), TWO: ("", "notOwner")}),
    Case(desc="One service with three endpoints across across two hosts, controller 2 hosts two endpoints "
              "controller 2 should announce for the service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None), ("iris2", True, None))),),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service with three endpoints across across two hosts, controller 1 hosts two endpoints "
              "controller 2 should announce for the service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None), ("iris1", True, None))),),
         expect={ONE: ("notOwner", "")}),
    # The Go case says "one of which is not ready" but all three of its endpoints are ready.
    Case(desc="One service with three endpoints across across two hosts, controller 2 hosts two endpoints, one of "
              "which is not ready, controller 2 should announce for the service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None), ("iris2", True, None))),),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service with three endpoints across across two hosts, controller 1 hosts two endpoints, one of "
              "which is not ready, controller 1 should announce for the service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None), ("iris1", False, None))),),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service with three endpoints across across two hosts, controller 2 hosts two endpoints, both of "
              "which are not ready, controller 1 should announce for the service",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", False, None), ("iris2", False, None))),),
         expect={ONE: ("", "notOwner")}),
    # TestUsableNodesEPSlicesWithSpeakerlistDisabled: one Local Service, both endpoints on iris1.
    Case(desc="TestUsableNodesEPSlicesWithSpeakerlistDisabled: endpoints on iris1 only",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris1", True, None))),),
         expect={ONE: ("", "notOwner")}),
]  # fmt: skip


def _on(node: str) -> tuple[Ep, ...]:
    return ((node, True, None),)


FROM_NODES = [
    Case(desc="One service, endpoint on iris1, selector on iris1, c1 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),), ads=(("iris1",),),
         expect={ONE: ("", "noMatchingAdvertisement")}),
    Case(desc="One service, etp local, endpoint on iris1, selector on both(split), c2 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1")),), ads=(("iris1",), ("iris2",)),
         expect={ONE: ("", "notOwner")}),
    Case(desc="One service, endpoint on iris1, selector on both, c2 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service, endpoint on both nodes, advertisement on iris1, c1 should announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None)), local=False),),
         ads=(("iris1",),), expect={ONE: ("", "noMatchingAdvertisement")}),
    Case(desc="One service, ltp endpoint on iris1, advertisement on iris2, no one should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1")),), ads=(("iris2",),),
         expect={ONE: ("noMatchingAdvertisement", "notOwner")}),
    Case(desc="One service, endpoint on iris1, no selector, iris2 excluded, c1 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),), excluded=("iris2",),
         expect={ONE: ("", "notOwner")}),
    Case(desc="One service, endpoint on iris1, no selector, iris1 excluded, c2 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),), excluded=("iris1",),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service, endpoint on iris1, no selector, both excluded, both should not announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),), excluded=("iris1", "iris2"),
         expect={ONE: ("notOwner", "notOwner")}),
    Case(desc="One service, endpoint on iris1, no selector, etplocal, both excluded, ignore excludelb, c1 should "
              "announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1")),), excluded=("iris1", "iris2"),
         expect={ONE: ("notOwner", "notOwner")},
         differs="MetalLB's speaker flag --ignore-exclude-lb lets excluded nodes announce (c1 would); metalloid "
                 "has no such flag and always honours the label"),
]  # fmt: skip


@pytest.mark.parametrize("case", EP_SLICES, ids=[c.desc for c in EP_SLICES])
def test_should_announce_ep_slices(case: Case) -> None:
    """TestShouldAnnounceEPSlices (and the speakerlist-disabled case): who announces, by serving endpoints."""
    _check(case)


@pytest.mark.parametrize("case", FROM_NODES, ids=[c.desc for c in FROM_NODES])
def test_should_announce_from_nodes(case: Case) -> None:
    """TestShouldAnnounceFromNodes: advertisements' nodes and the exclude-from-external-load-balancers label."""
    _check(case)


def _check(case: Case) -> None:
    got = {node: answers(case, node) for node in case.nodes}
    for ip, expected in case.expect.items():
        assert (got["iris1"][ip], got["iris2"][ip]) == expected, (case.desc, ip)


def test_cluster_policy() -> None:
    """TestClusterPolicy: for every IP of a /24, exactly one of two speakers announces a Cluster Service, the same
    one whichever node hosts the endpoint, and each speaker announces some."""
    found = {"iris1": False, "iris2": False}
    for last in range(1, 256):
        ip = f"10.20.30.{last}"
        per_endpoint = []
        for endpoint_node in NODES:
            case = Case(desc=ip, services=(Svc(ip=ip, endpoints=_on(endpoint_node), local=False),), expect={})
            winners = [n for n in NODES if answers(case, n)[ip] == ""]
            assert len(winners) == 1, (ip, winners)
            per_endpoint.append(winners[0])
        assert per_endpoint[0] == per_endpoint[1], ip
        found[per_endpoint[0]] = True
    assert all(found.values()), found


USABLE = [  # TestUsableNodesEPSlices: nodesWithEndpoint for a Local Service, both speakers usable.
    ("Two endpoints, different hosts, multi slice", (("iris1", True, None), ("iris2", True, None)), ("iris1", "iris2")),
    ("Two endpoints, different hosts", (("iris1", True, None), ("iris2", True, None)), ("iris1", "iris2")),
    ("Two endpoints, same host", (("iris1", True, None), ("iris1", True, None)), ("iris1",)),
    ("Two endpoints, same host, one is not ready", (("iris1", True, None), ("iris1", False, None)), ("iris1",)),
    ("Two endpoints, different hosts, not ready but serving", (("iris1", False, True), ("iris2", False, True)),
     ("iris1", "iris2")),
    ("Two endpoints, different hosts, ready but not serving", (("iris1", True, False), ("iris2", True, False)),
     ("iris1", "iris2")),
]  # fmt: skip


@pytest.mark.parametrize(("desc", "endpoints", "usable"), USABLE, ids=[u[0] for u in USABLE])
def test_usable_nodes_ep_slices(desc: str, endpoints: tuple[Ep, ...], usable: tuple[str, ...]) -> None:
    """TestUsableNodesEPSlices: the candidates of a Local Service are the nodes with an endpoint that can serve."""
    config, assignments = build(Case(desc=desc, services=(Svc(ip=ONE, endpoints=endpoints),), expect={}))
    view = AnnouncerView(node_name="iris1", mode="kubernetes", config=config, assignments=assignments,
                         members=frozenset(NODES))  # fmt: skip
    [entry] = plan(view).elections
    assert entry.election is not None
    assert sorted(entry.election.ranking) == list(usable)


CONDITIONS = [  # epslices TestIsConditionReadyOrServing
    ("Is Ready", True, None, True),
    ("Is Serving", None, True, True),
    ("Is Ready but not serving", True, False, True),
    ("Ready and Serving not set", None, None, True),
    ("Ready not set and not serving", None, False, True),
    ("Not Ready", False, None, False),
]


@pytest.mark.parametrize(("desc", "ready", "serving", "can_serve"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_is_condition_ready_or_serving(desc: str, ready: bool | None, serving: bool | None, can_serve: bool) -> None:
    """internal/k8s/epslices TestIsConditionReadyOrServing, through the EndpointSlice parser."""
    parsed, _ = parse_objects([slice_object("web", (("n1", ready, serving),))])
    [endpoint] = parsed.endpoint_slices[0].endpoints
    assert endpoint_can_serve(endpoint) is can_serve


@pytest.mark.parametrize(
    ("desc", "ads", "every", "interfaces"),
    [
        ("AllInterfaces set", ((),), True, ()),
        ("Single L2Advertisement with interfaces", (("eth1", "eth2"),), False, ("eth1", "eth2")),
        ("Multiple L2Advertisements - interfaces merged", (("eth0", "eth1"), ("eth0", "eth2")), False,
         ("eth0", "eth1", "eth2")),
        ("Multiple L2Advertisements - one has AllInterfaces", (("eth0", "eth1"), ()), True, ()),
    ],
)  # fmt: skip
def test_ip_advertisement_for(desc: str, ads: tuple[tuple[str, ...], ...], every: bool,
                              interfaces: tuple[str, ...]) -> None:  # fmt: skip
    """TestIPAdvertisementFor: the interfaces the winner answers on are the union; one "all" makes it all."""
    config = Config(pools=(POOL,), nodes=(Node(name="iris1"),),
                    l2_advertisements=tuple(L2Advertisement(name=f"a{i}", interfaces=a) for i, a in enumerate(ads)),
                    services=(Service(namespace="default", name="svc1"),))  # fmt: skip
    assignment = Assignment(service=ServiceKey(namespace="default", name="svc1"),
                            ips=(ipaddress.ip_address("10.20.30.3"),), pool="default")  # fmt: skip
    view = AnnouncerView(node_name="iris1", mode="kubernetes", config=config, assignments=(assignment,),
                         members=frozenset({"iris1"}))  # fmt: skip
    [owned] = plan(view).owned
    assert owned.interfaces == (() if every else interfaces)


@pytest.mark.parametrize(
    ("desc", "candidates", "ip", "want"),
    [
        ("empty input", (), "10.0.0.1", ()),
        ("single candidate", ("node-a",), "10.0.0.1", ("node-a",)),
        ("no scores: stable hash order independent of input order", ("node-c", "node-a", "node-b"), "10.0.0.1",
         ("node-b", "node-a", "node-c")),
        ("no scores: hash order depends on the IP", ("node-a", "node-b", "node-c"), "10.0.0.2",
         ("node-b", "node-c", "node-a")),
        # The hash part of the scored rows (the score itself is preferredNodeSelectors: not supported).
        ("highest score wins regardless of hash (the unscored rest)", ("worker-b", "edge-b", "worker-a"),
         "10.20.30.1", ("edge-b", "worker-a", "worker-b")),
        ("equal non-zero scores fall through to hash", ("node-a", "node-b"), "10.20.30.1", ("node-b", "node-a")),
        ("preferred group sorted by hash", ("edge-a", "edge-b"), "10.20.30.1", ("edge-b", "edge-a")),
    ],
)  # fmt: skip
def test_sort_l2_candidates(desc: str, candidates: tuple[str, ...], ip: str, want: tuple[str, ...]) -> None:
    """TestSortL2Candidates: sha256("<node>#<ip>") order, whatever the input order."""
    assert rank(candidates, ipaddress.ip_address(ip)) == want
