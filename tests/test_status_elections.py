"""/status carries each Service's election whether a plugin reports elections as a mapping or as a list."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from supervisor.allocating.results import AllocationResult, Assignment
from supervisor.config.model import ServiceKey
from supervisor.messages import AllocationDone
from supervisor.supervising.state import RoutedState
from supervisor.supervising.status import build_status

KEY = ServiceKey(namespace="ingress-nginx", name="ingress-nginx-controller")
ELECTION = {"winner": "n3", "ranking": ["n3", "n1", "n2"], "excluded": []}


def _status(elections: Any) -> dict[str, Any]:
    result = AllocationResult(
        assignments={KEY: Assignment(service=KEY, ips=(ipaddress.ip_address("10.0.10.10"),), pool="first-pool")},
        pending={}, pools=(),
    )
    state = RoutedState(node_name="n2", allocation=AllocationDone(generation=1, result=result),
                        statuses={"announcer-layer2": {"announcements": [], "elections": elections}})
    return build_status(state, [], now=0.0, version="test", protocols={"announcer-layer2": "layer2"})


@pytest.mark.parametrize("elections", [
    pytest.param({str(KEY): ELECTION}, id="mapping"),
    pytest.param([{"service": "other/svc", "ip": "10.0.10.11", "winner": "n1", "ranking": ["n1"], "excluded": []},
                  {"service": str(KEY), "ip": "10.0.10.10", **ELECTION}], id="list-from-layer2"),
])
def test_election_reaches_the_service_entry(elections: Any) -> None:
    service = _status(elections)["services"][0]
    assert service["elections"]["layer2"]["winner"] == "n3"
    assert service["elections"]["layer2"]["ranking"] == ["n3", "n1", "n2"]


def test_no_election_for_other_services() -> None:
    service = _status([{"service": "other/svc", "winner": "n1", "ranking": ["n1"], "excluded": []}])["services"][0]
    assert service["elections"] == {}


@pytest.mark.parametrize(("winner", "announced", "expected"), [
    pytest.param("n3", {}, ["n3 (layer2)", "Elected"], id="another-node-won"),
    pytest.param("n2", {}, ["<none>", "NotAnnounced"], id="this-node-won-but-does-not-announce"),
    pytest.param("n2", {"layer2": ["n2"]}, ["n2 (layer2)", "Announced"], id="this-node-announces"),
])
def test_status_table_names_the_elected_node(winner: str, announced: dict[str, list[str]],
                                              expected: list[str]) -> None:
    from supervisor.commands.status import format_status

    document = _status([{"service": str(KEY), "ip": "10.0.10.10", **ELECTION, "winner": winner}])
    document["services"][0]["announced"] = announced
    row = next(line for line in format_status(document).splitlines() if line.startswith("ingress-nginx"))
    assert " ".join(row.split()[4:]) == " ".join(expected)
