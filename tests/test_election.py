"""Election: eligibility rules (table-driven), MetalLB's ranking, and agreement properties."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.config.model import (
    EXCLUDE_FROM_LB_LABEL,
    Config,
    Endpoint,
    EndpointSlice,
    ExternalTrafficPolicy,
    LabelSelector,
    Node,
    SelectorOperator,
    SelectorRequirement,
    Service,
    labels_of,
)
from supervisor.electing.election import (
    EXCLUDED_LABEL,
    NETWORK_UNAVAILABLE,
    NO_ENDPOINT_SLICE,
    NO_LOCAL_ENDPOINT,
    NO_SERVING_ENDPOINT,
    NOT_A_MEMBER,
    NOT_SELECTED,
    elect_layer2,
    eligibility,
    rank,
)

IP = ipaddress.IPv4Address("10.0.10.10")
IP6 = ipaddress.IPv6Address("2001:db8::10")


def node(name: str, *, labels: dict[str, str] | None = None, network_unavailable: bool = False) -> Node:
    return Node(name=name, labels=labels_of(labels), network_unavailable=network_unavailable)


def endpoints(*placements: tuple[str | None, bool, bool]) -> tuple[EndpointSlice, ...]:
    """One slice for default/web with endpoints on (node, ready, serving)."""
    eps = tuple(Endpoint(node_name=n, ready=r, serving=s) for n, r, s in placements)
    return (EndpointSlice(namespace="default", name="web-abc", service_name="web", endpoints=eps),)


WEB = Service(namespace="default", name="web")
WEB_LOCAL = Service(namespace="default", name="web", external_traffic_policy=ExternalTrafficPolicy.LOCAL)
ZONE_A = LabelSelector(match_labels=(("zone", "a"),))
NOT_EDGE = LabelSelector(
    match_expressions=(SelectorRequirement(key="role", operator=SelectorOperator.NOT_IN, values=("edge",)),)
)


@dataclass(frozen=True)
class Case:
    id: str
    nodes: tuple[Node, ...]
    members: frozenset[str]
    service: Service = WEB
    selectors: tuple[LabelSelector, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()
    candidates: tuple[str, ...] = ()
    excluded: tuple[tuple[str, str], ...] = ()
    # Kubernetes mode: the EndpointSlices listed are all there are.
    listed: bool = False
    not_served: str | None = None


THREE = (node("n1", labels={"zone": "a"}), node("n2", labels={"zone": "b"}), node("n3", labels={"zone": "a"}))
ALL3 = frozenset({"n1", "n2", "n3"})

CASES = [
    Case("everyone-eligible", THREE, ALL3, candidates=("n1", "n2", "n3")),
    Case("not-a-member", THREE, frozenset({"n1", "n3"}), candidates=("n1", "n3"), excluded=(("n2", NOT_A_MEMBER),)),
    Case(
        "exclude-label",
        (node("n1"), node("n2", labels={EXCLUDE_FROM_LB_LABEL: ""})),
        frozenset({"n1", "n2"}),
        candidates=("n1",),
        excluded=(("n2", EXCLUDED_LABEL),),
    ),
    Case(
        "network-unavailable",
        (node("n1", network_unavailable=True), node("n2")),
        frozenset({"n1", "n2"}),
        candidates=("n2",),
        excluded=(("n1", NETWORK_UNAVAILABLE),),
    ),
    Case(
        "node-selector-match-labels",
        THREE,
        ALL3,
        selectors=(ZONE_A,),
        candidates=("n1", "n3"),
        excluded=(("n2", NOT_SELECTED),),
    ),
    Case(
        "node-selectors-are-ORed",
        THREE,
        ALL3,
        selectors=(ZONE_A, LabelSelector(match_labels=(("zone", "b"),))),
        candidates=("n1", "n2", "n3"),
    ),
    Case(
        "node-selector-expression",
        (node("n1", labels={"role": "edge"}), node("n2", labels={"role": "core"}), node("n3")),
        ALL3,
        selectors=(NOT_EDGE,),
        candidates=("n2", "n3"),
        excluded=(("n1", NOT_SELECTED),),
    ),
    Case(
        "membership-is-checked-first",
        (node("n1", labels={EXCLUDE_FROM_LB_LABEL: "true"}, network_unavailable=True),),
        frozenset(),
        excluded=(("n1", NOT_A_MEMBER),),
    ),
    Case(
        "etp-local-serving-endpoint",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        slices=endpoints(("n2", True, True)),
        candidates=("n2",),
        excluded=(("n1", NO_LOCAL_ENDPOINT), ("n3", NO_LOCAL_ENDPOINT)),
    ),
    Case(
        "etp-local-not-ready-endpoint",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        slices=endpoints(("n2", False, False), ("n3", True, True)),
        candidates=("n3",),
        excluded=(("n1", NO_LOCAL_ENDPOINT), ("n2", NO_LOCAL_ENDPOINT)),
    ),
    Case(
        # MetalLB's rule: a terminating endpoint (ready false) that still serves
        # keeps its node a candidate, so mixed clusters elect the same node.
        "etp-local-terminating-but-serving-endpoint",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        slices=endpoints(("n2", False, True)),
        candidates=("n2",),
        excluded=(("n1", NO_LOCAL_ENDPOINT), ("n3", NO_LOCAL_ENDPOINT)),
    ),
    Case(
        # MetalLB's activeEndpointExists: no endpoint that can serve, nobody announces.
        "etp-local-known-empty-means-nobody",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        slices=endpoints(),
        not_served=NO_SERVING_ENDPOINT,
    ),
    Case(
        "etp-cluster-no-serving-endpoint-means-nobody",
        THREE,
        ALL3,
        slices=endpoints(("n2", False, False)),
        not_served=NO_SERVING_ENDPOINT,
    ),
    Case(
        # epslices EndpointCanServe: ready (or no ready condition) is enough.
        "etp-cluster-ready-endpoint-anywhere-means-everyone",
        THREE,
        ALL3,
        slices=endpoints(("n2", True, False)),
        candidates=("n1", "n2", "n3"),
    ),
    Case(
        "kubernetes-no-slice-means-nobody",
        THREE,
        ALL3,
        listed=True,
        not_served=NO_ENDPOINT_SLICE,
    ),
    Case(
        "kubernetes-no-slice-local-means-nobody",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        listed=True,
        not_served=NO_ENDPOINT_SLICE,
    ),
    Case(
        "etp-local-unknown-means-everyone",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        candidates=("n1", "n2", "n3"),
    ),
    Case(
        "etp-local-endpoint-without-node",
        THREE,
        ALL3,
        service=WEB_LOCAL,
        slices=endpoints((None, True, True)),
        excluded=(("n1", NO_LOCAL_ENDPOINT), ("n2", NO_LOCAL_ENDPOINT), ("n3", NO_LOCAL_ENDPOINT)),
    ),
    Case(
        # Standalone: a Service whose EndpointSlices the file does not list is served by the host.
        "standalone-no-slice-means-everyone",
        THREE,
        ALL3,
        candidates=("n1", "n2", "n3"),
    ),
    Case(
        "etp-local-endpoint-on-a-dead-node",
        THREE,
        frozenset({"n1", "n3"}),
        service=WEB_LOCAL,
        slices=endpoints(("n2", True, True)),
        excluded=(("n1", NO_LOCAL_ENDPOINT), ("n2", NOT_A_MEMBER), ("n3", NO_LOCAL_ENDPOINT)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_eligibility(case: Case) -> None:
    config = Config(
        nodes=case.nodes, services=(case.service,), endpoint_slices=case.slices, endpoints_listed=case.listed
    )
    got = eligibility(config, case.service, node_selectors=case.selectors, members=case.members)
    assert got.candidates == case.candidates
    assert got.excluded == case.excluded
    assert got.not_served == case.not_served


# -- MetalLB's ranking ------------------------------------------------------------------

# Computed outside Python: `echo -n "node-a#10.0.10.10" | sha256sum` and so on.
VECTOR_V4 = {
    "node-a": "14de1d860a9fac547e00701e76bdec260080cce53f3ed7fecba73c7396e63e69",
    "node-b": "f01435e66debed71c67d4c87a327dffc734595bbf556ae838e41d7b378ae1d46",
    "node-c": "e6d71a6198ca7f3bde36056917f221fbd37e4d21c27ce5bb6cb876743769c02d",
}
VECTOR_V6 = {
    "node-a": "5525059d790ad6c9458aabead6068769eb0cbb13962eae2500ff38eb462569c2",
    "node-b": "21d5668f18c03bbe00f394da685dde376e0293fd36d5320ac575f592bd70c06b",
    "node-c": "d30d3eb7a24270e021589e4071ea239bc2d6472ec4bf8f4e965bc63696567392",
}


@pytest.mark.parametrize(
    ("ip", "vector", "expected"),
    [
        (IP, VECTOR_V4, ("node-a", "node-c", "node-b")),
        (IP6, VECTOR_V6, ("node-b", "node-a", "node-c")),
    ],
    ids=["ipv4", "ipv6"],
)
def test_metallb_ranking_known_vector(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, vector: dict[str, str], expected: tuple[str, ...]
) -> None:
    assert tuple(sorted(vector, key=vector.__getitem__)) == expected  # the vector itself
    assert rank(["node-b", "node-c", "node-a"], ip) == expected


def test_elect_layer2_takes_the_first_and_keeps_the_reasons() -> None:
    config = Config(nodes=(node("node-a"), node("node-b"), node("node-c")), services=(WEB,))
    eligible = eligibility(config, WEB, node_selectors=(), members=frozenset({"node-b", "node-c"}))
    election = elect_layer2(eligible, IP)
    assert election.winner == "node-c"  # node-a ranks first but is not alive
    assert election.ranking == ("node-c", "node-b")
    assert election.excluded == (("node-a", NOT_A_MEMBER),)
    assert elect_layer2(eligibility(config, WEB, node_selectors=(), members=frozenset()), IP).winner is None


# -- properties -----------------------------------------------------------------------

NAMES = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), min_size=1, max_size=8, unique=True)
IPS = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
)


@given(NAMES, IPS, st.randoms(use_true_random=False), st.data())
def test_all_nodes_agree_regardless_of_input_order(
    names: list[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address, rnd: object, data: st.DataObject
) -> None:
    members = frozenset(data.draw(st.sets(st.sampled_from(names))))
    nodes = [node(n, labels={"zone": data.draw(st.sampled_from(["a", "b"]))}) for n in names]
    selectors = data.draw(st.sampled_from([(), (ZONE_A,)]))
    answers = set()
    for _ in range(3):  # three nodes, each listing the facts in its own order
        shuffled = list(nodes)
        rnd.shuffle(shuffled)  # type: ignore[attr-defined]
        config = Config(nodes=tuple(shuffled), services=(WEB,))
        eligible = eligibility(config, WEB, node_selectors=selectors, members=members)
        answers.add((elect_layer2(eligible, ip).ranking, eligible.excluded))
    assert len(answers) == 1


@given(NAMES, IPS, st.data())
def test_removing_a_non_owner_never_moves_the_winner(
    names: list[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address, data: st.DataObject
) -> None:
    winner = rank(names, ip)[0]
    others = [n for n in names if n != winner]
    if not others:
        return
    gone = data.draw(st.sampled_from(others))
    assert rank([n for n in names if n != gone], ip)[0] == winner


@given(NAMES, IPS, st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True))
def test_adding_a_node_moves_the_ip_only_if_it_ranks_first(
    names: list[str], ip: ipaddress.IPv4Address | ipaddress.IPv6Address, new: str
) -> None:
    if new in names:
        return
    before = rank(names, ip)[0]
    after = rank([*names, new], ip)
    assert after[0] in (before, new)
    # ...and the rest of the order is undisturbed: the newcomer is inserted, nothing else moves.
    assert tuple(n for n in after if n != new) == rank(names, ip)


def _slice(service: str, name: str, *endpoints: Endpoint) -> EndpointSlice:
    return EndpointSlice(namespace="default", name=name, service_name=service, endpoints=endpoints)


@pytest.mark.parametrize("listed", [True, False], ids=["slices-listed", "file-without-slices"])
def test_eligibility_is_the_same_with_the_slice_index_a_planner_builds_once(listed: bool) -> None:
    # Planners elect every Service with `endpoint_slices_by_service()` built once per pass
    # (scanning every slice per Service was O(n²)): the answer must not change.
    local = ExternalTrafficPolicy.LOCAL
    services = (
        Service(namespace="default", name="two-slices", external_traffic_policy=local),
        Service(namespace="default", name="not-serving"),
        Service(namespace="default", name="no-slice"),
        Service(namespace="other", name="two-slices", external_traffic_policy=local),  # same name, other namespace
    )
    slices = (
        _slice("two-slices", "a", Endpoint(node_name="n1")),
        _slice("not-serving", "b", Endpoint(node_name="n2", ready=False, serving=False)),
        _slice("two-slices", "c", Endpoint(node_name="n2"), Endpoint(node_name=None)),
    )
    config = Config(services=services, endpoint_slices=slices, endpoints_listed=listed,
                    nodes=(Node(name="n1"), Node(name="n2"), Node(name="n3")))
    index = config.endpoint_slices_by_service()
    assert index[services[0].key] == (slices[0], slices[2])  # config order
    assert services[2].key not in index and services[3].key not in index
    for service in services:
        kwargs = {"node_selectors": (), "members": frozenset({"n1", "n2", "n3"})}
        assert eligibility(config, service, slices=index, **kwargs) == eligibility(config, service, **kwargs)
