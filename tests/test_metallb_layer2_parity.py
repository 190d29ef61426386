"""MetalLB's layer 2 node-selection tests (speaker/layer2_controller_test.go, internal/k8s/epslices) against metalloid.

MetalLB asks each speaker `ShouldAnnounce` and expects "" (this node
announces) or a reason ("notOwner", "noMatchingAdvertisement"). metalloid's
answer is the layer 2 plan every node computes (`plugins.layer2.planning.plan`):
whether this node owns the IP. Each case builds the Kubernetes objects the Go
test describes (an L2Advertisement's `Nodes` map becomes nodeSelectors on
`kubernetes.io/hostname`; EndpointSlices are parsed from API objects so their
conditions mean what the API says), in Kubernetes mode (every EndpointSlice is
known), and checks both speakers.

Ported: every test function of the file: TestIsConditionReadyOrServing
(epslices), TestUsableNodesEPSlices, TestUsableNodesEPSlicesWithSpeakerlistDisabled,
TestShouldAnnounceEPSlices, TestShouldAnnounceFromNodes, TestClusterPolicy,
TestL2ServiceSelectors, TestL2SharedIPWithServiceSelectors, TestL2AdsForService,
TestL2ElectionConsistentButAdsPerNode, TestL2NoMatchingAdForServiceAndNode,
TestL2ServiceSelectorFiltersCandidateNodes, TestIPAdvertisementFor,
TestSortL2Candidates, TestPreferredScoresFor, TestShouldAnnouncePreferredNode,
TestShouldAnnounceSplitBrainWithMixedAds, TestShouldAnnouncePreferredNodeFailover.
One case differs on purpose (metalloid has no --ignore-exclude-lb flag): it
says so, and docs/migrating-from-metallb.md lists it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from plugins.layer2.planning import plan
from supervisor.api import AnnouncerView, Assignment
from supervisor.config.model import (
    EXCLUDE_FROM_LB_LABEL,
    AddressRange,
    Config,
        IPAddressPool,
    L2Advertisement,
    LabelSelector,
    Node,
    PreferredNodeSelector,
    SelectorOperator,
    SelectorRequirement,
    Service,
    ServiceKey,
    labels_of,
)
from supervisor.config.parsing import parse_objects
from supervisor.electing.election import (
    NO_SERVICE_MATCH,
    NOT_SELECTED,
    SHARED_WITH_SELECTOR,
    endpoint_can_serve,
    preferred_scores,
    rank,
)

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


@dataclass(frozen=True, kw_only=True)
class Ad:
    """An L2Advertisement as MetalLB's tests give it: its resolved `Nodes` (None: every node),
    `ServiceSelectors` (label maps), `PreferredNodes` (node -> weight) and interfaces."""

    nodes: tuple[str, ...] | None = None
    services: tuple[dict[str, str], ...] = ()
    preferred: dict[str, int] = field(default_factory=dict)
    interfaces: tuple[str, ...] = ()

    def model(self, index: int) -> L2Advertisement:
        return L2Advertisement(
            name=f"l2-{index}",
            node_selectors=(_hostname_in(self.nodes),) if self.nodes is not None else (),
            service_selectors=tuple(LabelSelector(match_labels=labels_of(s)) for s in self.services),
            preferred_node_selectors=tuple(PreferredNodeSelector(weight=w, preference=_hostname_in((n,)))
                                           for n, w in self.preferred.items()),
            interfaces=self.interfaces,
        )  # fmt: skip


def _hostname_in(nodes: tuple[str, ...]) -> LabelSelector:
    """MetalLB's resolved `Nodes` map as the nodeSelector that selects exactly those nodes."""
    return LabelSelector(match_expressions=(
        SelectorRequirement(key=HOSTNAME, operator=SelectorOperator.IN, values=nodes),))  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Svc:
    ip: str
    endpoints: tuple[Ep, ...]
    local: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    def obj(self, name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default", "labels": dict(self.labels),
                             "annotations": dict(self.annotations)},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                         "externalTrafficPolicy": "Local" if self.local else "Cluster"}}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Case:
    desc: str
    services: tuple[Svc, ...]
    # ip -> every node's answer, in the order of `nodes`; "" means "announces".
    expect: dict[str, tuple[str, ...]]
    ads: tuple[Ad, ...] = (Ad(nodes=NODES),)
    excluded: tuple[str, ...] = ()
    differs: str = ""
    nodes: tuple[str, ...] = NODES
    # The nodes with a running speaker (MetalLB's speaker list); None: every node.
    members: tuple[str, ...] | None = None


def build(case: Case) -> tuple[Config, tuple[Assignment, ...]]:
    objects, assignments = [], []
    for number, svc in enumerate(case.services, start=1):
        name = f"svc{number}"
        objects += [svc.obj(name), slice_object(name, svc.endpoints)]
        assignments.append(Assignment(service=ServiceKey(namespace="default", name=name),
                                      ips=(ipaddress.ip_address(svc.ip),), pool="default"))  # fmt: skip
    parsed, diagnostics = parse_objects(objects)
    assert not [d for d in diagnostics if d.is_error], diagnostics
    services = parsed.services
    nodes = tuple(
        Node(name=n, labels=labels_of({HOSTNAME: n, **({EXCLUDE_FROM_LB_LABEL: ""} if n in case.excluded else {})}))
        for n in case.nodes
    )
    config = Config(pools=(POOL,), l2_advertisements=tuple(a.model(i) for i, a in enumerate(case.ads)),
                    services=tuple(services), nodes=nodes, endpoint_slices=parsed.endpoint_slices,
                    endpoints_listed=True)  # fmt: skip
    return config, tuple(assignments)


REASONS = {NO_SERVICE_MATCH.format(pool="default"): "noMatchingAdvertisement",
           SHARED_WITH_SELECTOR: "sharedIPWithServiceSelector"}  # fmt: skip


def answers(case: Case, node: str) -> dict[str, str]:
    """metalloid's answer on `node` per IP: "" when it owns the IP, else the MetalLB reason it corresponds to."""
    config, assignments = build(case)
    members = frozenset(case.members if case.members is not None else case.nodes)
    view = AnnouncerView(node_name=node, mode="kubernetes", config=config, assignments=assignments,
                         members=members)  # fmt: skip
    result = plan(view)
    owned = {str(o.ip) for o in result.owned}
    out = {}
    for entry in result.elections:
        ip = str(entry.ip)
        excluded = dict(entry.election.excluded) if entry.election else {}
        if ip in owned:
            out[ip] = ""
        elif entry.not_announced_reason in REASONS:
            out[ip] = REASONS[entry.not_announced_reason]
        elif excluded.get(node) == NOT_SELECTED:
            out[ip] = "noMatchingAdvertisement"
        else:
            out[ip] = "notOwner"
    return out


def winners(case: Case) -> list[str]:
    """The nodes (with a speaker) that announce the first Service's IP."""
    speakers = case.members if case.members is not None else case.nodes
    return [n for n in speakers if answers(case, n)[case.services[0].ip] == ""]


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
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),), ads=(Ad(nodes=("iris1",)),),
         expect={ONE: ("", "noMatchingAdvertisement")}),
    Case(desc="One service, etp local, endpoint on iris1, selector on both(split), c2 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1")),), ads=(Ad(nodes=("iris1",)), Ad(nodes=("iris2",))),
         expect={ONE: ("", "notOwner")}),
    Case(desc="One service, endpoint on iris1, selector on both, c2 should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1"), local=False),),
         expect={ONE: ("notOwner", "")}),
    Case(desc="One service, endpoint on both nodes, advertisement on iris1, c1 should announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None)), local=False),),
         ads=(Ad(nodes=("iris1",)),), expect={ONE: ("", "noMatchingAdvertisement")}),
    Case(desc="One service, ltp endpoint on iris1, advertisement on iris2, no one should announce",
         services=(Svc(ip=ONE, endpoints=_on("iris1")),), ads=(Ad(nodes=("iris2",)),),
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
    """TestShouldAnnounceEPSlices and TestUsableNodesEPSlicesWithSpeakerlistDisabled: who announces, by serving
    endpoints."""
    _check(case)


@pytest.mark.parametrize("case", FROM_NODES, ids=[c.desc for c in FROM_NODES])
def test_should_announce_from_nodes(case: Case) -> None:
    """TestShouldAnnounceFromNodes: advertisements' nodes and the exclude-from-external-load-balancers label."""
    _check(case)


def _check(case: Case) -> None:
    got = {node: answers(case, node) for node in case.nodes}
    for ip, expected in case.expect.items():
        assert tuple(got[node][ip] for node in case.nodes) == expected, (case.desc, ip)


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
        # The hash part of the scored rows (the scores: test_sort_l2_candidates_with_scores).
        ("highest score wins regardless of hash (the unscored rest)", ("worker-b", "edge-b", "worker-a"),
         "10.20.30.1", ("edge-b", "worker-a", "worker-b")),
        ("equal non-zero scores fall through to hash", ("node-a", "node-b"), "10.20.30.1", ("node-b", "node-a")),
        ("preferred group sorted by hash", ("edge-a", "edge-b"), "10.20.30.1", ("edge-b", "edge-a")),
    ],
)  # fmt: skip
def test_sort_l2_candidates(desc: str, candidates: tuple[str, ...], ip: str, want: tuple[str, ...]) -> None:
    """TestSortL2Candidates: sha256("<node>#<ip>") order, whatever the input order."""
    assert rank(candidates, ipaddress.ip_address(ip)) == want


# --- serviceSelectors and preferredNodeSelectors (MetalLB's newest L2Advertisement fields) -------------------

NGINX = {"app": "nginx"}
ON_IRIS1: tuple[Ep, ...] = (("iris1", None, None),)  # the Go tests give these endpoints no conditions
SHARED = {"metallb.io/allow-shared-ip": "shared"}
LEGACY_SHARED = {"metallb.universe.tf/allow-shared-ip": "shared"}
ONLY_IRIS1 = {"nodes": ("iris1",), "members": ("iris1",)}

SERVICE_SELECTORS = [
    # TestL2ServiceSelectors (one speaker, iris1)
    Case(desc="Empty selector matches all services", services=(Svc(ip=ONE, endpoints=ON_IRIS1, local=False,
         labels=NGINX),), ads=(Ad(nodes=("iris1",)),), expect={ONE: ("",)}, **ONLY_IRIS1),
    Case(desc="Matching selector allows announcement", services=(Svc(ip=ONE, endpoints=ON_IRIS1, local=False,
         labels=NGINX),), ads=(Ad(nodes=("iris1",), services=(NGINX,)),), expect={ONE: ("",)}, **ONLY_IRIS1),
    Case(desc="Non-matching selector prevents announcement", services=(Svc(ip=ONE, endpoints=ON_IRIS1, local=False,
         labels=NGINX),), ads=(Ad(nodes=("iris1",), services=({"app": "apache"},)),),
         expect={ONE: ("noMatchingAdvertisement",)}, **ONLY_IRIS1),
    Case(desc="Multiple selectors - OR logic - one matches", services=(Svc(ip=ONE, endpoints=ON_IRIS1, local=False,
         labels=NGINX),), ads=(Ad(nodes=("iris1",), services=({"app": "apache"}, NGINX)),), expect={ONE: ("",)},
         **ONLY_IRIS1),
    # TestL2SharedIPWithServiceSelectors (one speaker, iris1)
    Case(desc="allow-shared-ip with serviceSelectors is denied", services=(Svc(ip=ONE, endpoints=ON_IRIS1,
         local=False, labels=NGINX, annotations=SHARED),), ads=(Ad(nodes=("iris1",), services=(NGINX,)),),
         expect={ONE: ("sharedIPWithServiceSelector",)}, **ONLY_IRIS1),
    Case(desc="allow-shared-ip without serviceSelectors is allowed", services=(Svc(ip=ONE, endpoints=ON_IRIS1,
         local=False, labels=NGINX, annotations=SHARED),), ads=(Ad(nodes=("iris1",)),), expect={ONE: ("",)},
         **ONLY_IRIS1),
    Case(desc="no allow-shared-ip with serviceSelectors is allowed", services=(Svc(ip=ONE, endpoints=ON_IRIS1,
         local=False, labels=NGINX),), ads=(Ad(nodes=("iris1",), services=(NGINX,)),), expect={ONE: ("",)},
         **ONLY_IRIS1),
    Case(desc="deprecated allow-shared-ip with serviceSelectors is denied", services=(Svc(ip=ONE,
         endpoints=ON_IRIS1, local=False, labels=NGINX, annotations=LEGACY_SHARED),),
         ads=(Ad(nodes=("iris1",), services=(NGINX,)),), expect={ONE: ("sharedIPWithServiceSelector",)},
         **ONLY_IRIS1),
    Case(desc="allow-shared-ip with mixed ads (one with selectors) is denied", services=(Svc(ip=ONE,
         endpoints=ON_IRIS1, local=False, labels=NGINX, annotations=SHARED),),
         ads=(Ad(nodes=("iris1",)), Ad(nodes=("iris1",), services=(NGINX,))),
         expect={ONE: ("sharedIPWithServiceSelector",)}, **ONLY_IRIS1),
    # TestL2NoMatchingAdForServiceAndNode: one ad for another Service, one for a node that does not exist.
    Case(desc="TestL2NoMatchingAdForServiceAndNode: no node announces",
         services=(Svc(ip=ONE, endpoints=(("iris1", None, None), ("iris2", None, None)), local=False,
                       labels={"app": "web"}),),
         ads=(Ad(nodes=NODES, services=({"app": "other"},)), Ad(nodes=("ghost",), services=({"app": "web"},))),
         expect={ONE: ("noMatchingAdvertisement", "noMatchingAdvertisement")}),
    # TestL2ServiceSelectorFiltersCandidateNodes
    Case(desc="svc-foo matches only iris1's adv, iris1 must announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None)), local=False,
                       labels={"app": "foo"}),),
         ads=(Ad(nodes=("iris1",), services=({"app": "foo"},)), Ad(nodes=("iris2",), services=({"app": "bar"},))),
         expect={ONE: ("", "noMatchingAdvertisement")}),
    Case(desc="svc-bar matches only iris2's adv, iris2 must announce",
         services=(Svc(ip=ONE, endpoints=(("iris1", True, None), ("iris2", True, None)), local=False,
                       labels={"app": "bar"}),),
         ads=(Ad(nodes=("iris1",), services=({"app": "foo"},)), Ad(nodes=("iris2",), services=({"app": "bar"},))),
         expect={ONE: ("noMatchingAdvertisement", "")}),
]  # fmt: skip


@pytest.mark.parametrize("case", SERVICE_SELECTORS, ids=[c.desc for c in SERVICE_SELECTORS])
def test_l2_service_selectors(case: Case) -> None:
    """TestL2ServiceSelectors, TestL2SharedIPWithServiceSelectors, TestL2NoMatchingAdForServiceAndNode,
    TestL2ServiceSelectorFiltersCandidateNodes."""
    _check(case)


def test_l2_ads_for_service() -> None:
    """TestL2AdsForService: advertisements without serviceSelectors, or with a matching one, apply."""
    ads = {"ad1": Ad(nodes=("nodeA",)), "ad2": Ad(nodes=("nodeA",), services=(NGINX,)),
           "ad3": Ad(nodes=("nodeA",), services=({"app": "apache"},)), "ad4": Ad(nodes=("nodeB",))}  # fmt: skip
    service = Service(namespace="default", name="s", labels=labels_of(NGINX))
    for listed, expected in ((["ad1"], ["ad1"]), (["ad2"], ["ad2"]), (["ad3"], []), (["ad4"], ["ad4"]),
                             (["ad3", "ad2", "ad1"], ["ad2", "ad1"])):  # fmt: skip
        models = tuple(replace(ads[n].model(0), name=n) for n in listed)
        config = Config(pools=(POOL,), l2_advertisements=models)
        assert [a.name for a in config.l2_advertisements_for_service("default", service)] == expected, listed


def test_l2_election_consistent_but_ads_per_node() -> None:
    """TestL2ElectionConsistentButAdsPerNode: one winner; each node answers on its own advertisement's interface."""
    case = Case(desc="per-node interfaces",
                services=(Svc(ip=ONE, endpoints=(("iris1", None, None), ("iris2", None, None)), local=False,
                              labels={"app": "web"}),),
                ads=(Ad(nodes=("iris1",), interfaces=("eth0",), services=({"app": "web"},)),
                     Ad(nodes=("iris2",), interfaces=("eth1",), services=({"app": "web"},))),
                expect={})  # fmt: skip
    [winner] = winners(case)
    other = "iris2" if winner == "iris1" else "iris1"
    for node, alive in ((winner, NODES), (other, (other,))):
        config, assignments = build(case)
        view = AnnouncerView(node_name=node, mode="kubernetes", config=config, assignments=assignments,
                             members=frozenset(alive))  # fmt: skip
        [owned] = plan(view).owned
        assert owned.interfaces == ("eth0" if node == "iris1" else "eth1",), node


@pytest.mark.parametrize(
    ("desc", "ads", "want"),
    [
        ("nil ads", (), {}),
        ("ads without preferences", (Ad(nodes=("a",)),), {}),
        ("preferences across ads sum", (Ad(nodes=("a", "b"), preferred={"a": 70}),
                                        Ad(nodes=("a", "b"), preferred={"a": 30, "b": 50})), {"a": 100, "b": 50}),
    ],
)  # fmt: skip
def test_preferred_scores_for(desc: str, ads: tuple[Ad, ...], want: dict[str, int]) -> None:
    """TestPreferredScoresFor."""
    config = Config(nodes=tuple(Node(name=n, labels=labels_of({HOSTNAME: n})) for n in ("a", "b")))
    assert preferred_scores(config, tuple(a.model(i) for i, a in enumerate(ads))) == want


EDGES = ("edge-a", "edge-b", "worker-a", "worker-b")
ON_WORKER_A: tuple[Ep, ...] = (("worker-a", True, None),)


@pytest.mark.parametrize(
    ("case", "winner"),
    [
        # TestShouldAnnouncePreferredNode
        (Case(desc="preferred node with highest score wins", nodes=EDGES,
              services=(Svc(ip=ONE, endpoints=ON_WORKER_A, local=False),),
              ads=(Ad(nodes=EDGES, preferred={"edge-a": 100}),), expect={}), "edge-a"),
        (Case(desc="ETP Local drops preferred node without local endpoints", nodes=("preferred-a", "worker-a"),
              services=(Svc(ip=ONE, endpoints=ON_WORKER_A),),
              ads=(Ad(nodes=("preferred-a", "worker-a"), preferred={"preferred-a": 100}),), expect={}), "worker-a"),
        # TestShouldAnnounceSplitBrainWithMixedAds
        (Case(desc="split brain with mixed ads", nodes=("edge-a", "worker-a"),
              services=(Svc(ip=ONE, endpoints=ON_WORKER_A, local=False),),
              ads=(Ad(nodes=("edge-a",), preferred={"edge-a": 100}), Ad(nodes=("edge-a", "worker-a")),
                   Ad(nodes=("edge-a", "worker-a"), preferred={"worker-a": 1000},
                      services=({"app": "does-not-match"},))), expect={}), "edge-a"),
        # TestShouldAnnouncePreferredNodeFailover, its three stages
        (Case(desc="preferred node pruned leaves remaining preferred as winner", nodes=EDGES[:3],
              members=("edge-b", "worker-a"), services=(Svc(ip=ONE, endpoints=ON_WORKER_A, local=False),),
              ads=(Ad(nodes=EDGES[:3], preferred={"edge-a": 100, "edge-b": 100}),), expect={}), "edge-b"),
        (Case(desc="preferred node returns and reclaims via sha256 tie-break", nodes=EDGES[:3],
              services=(Svc(ip=ONE, endpoints=ON_WORKER_A, local=False),),
              ads=(Ad(nodes=EDGES[:3], preferred={"edge-a": 100, "edge-b": 100}),), expect={}), "edge-b"),
        (Case(desc="all preferred unavailable falls through to hash across zero-score survivors", nodes=EDGES,
              members=("worker-a", "worker-b"), services=(Svc(ip=ONE, endpoints=ON_WORKER_A, local=False),),
              ads=(Ad(nodes=EDGES, preferred={"edge-a": 100, "edge-b": 100}),), expect={}), "worker-a"),
    ],
    ids=lambda v: v.desc if isinstance(v, Case) else None,
)  # fmt: skip
def test_should_announce_preferred_node(case: Case, winner: str) -> None:
    """TestShouldAnnouncePreferredNode, TestShouldAnnounceSplitBrainWithMixedAds,
    TestShouldAnnouncePreferredNodeFailover: exactly one speaker announces, the expected one."""
    assert winners(case) == [winner]


@pytest.mark.parametrize(
    ("desc", "candidates", "ip", "scores", "want"),
    [
        ("highest score wins regardless of hash", ("worker-b", "edge-b", "edge-a", "worker-a"), "10.20.30.1",
         {"edge-a": 100}, ("edge-a", "edge-b", "worker-a", "worker-b")),
        ("equal non-zero scores fall through to hash", ("node-b", "node-a"), "10.20.30.1",
         {"node-a": 100, "node-b": 100}, ("node-b", "node-a")),
        ("preferred group sorted by hash, unpreferred trail", ("worker-a", "edge-a", "edge-b"), "10.20.30.1",
         {"edge-a": 100, "edge-b": 100}, ("edge-b", "edge-a", "worker-a")),
    ],
)  # fmt: skip
def test_sort_l2_candidates_with_scores(desc: str, candidates: tuple[str, ...], ip: str, scores: dict[str, int],
                                        want: tuple[str, ...]) -> None:  # fmt: skip
    """TestSortL2Candidates, the scored rows."""
    assert rank(candidates, ipaddress.ip_address(ip), scores) == want
