"""Every example does what its comments say: `metalloid plan` on each file, checked against a table.

The comments in examples/*.yaml are documentation people copy from; when the
allocator or an example changes, this table says which claim broke. A new
example must get a row (the table must cover the folder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.allocating.allocator import allocate
from supervisor.cli import main
from supervisor.config.loading import load_config_files
from supervisor.serving.snapshot import offline_status

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# example -> {"namespace/name": the IPs `plan` prints, or "pending: <part of the reason>"}
EXPECTED: dict[str, dict[str, list[str] | str]] = {
    "homelab.yaml": {
        "ingress-nginx/ingress-nginx-controller": ["10.0.10.10"],  # the runbook's first free address
        "pihole/pi-hole": "pending: requested IP 10.0.0.200 is in no IPAddressPool",  # outside 10.0.10.10-99
    },
    "sharing.yaml": {
        "dns/dns-tcp": ["10.0.20.53"],  # same key, same requested IP, ports apart: shared
        "dns/dns-udp": ["10.0.20.53"],
        "dns/dns-metrics": ["10.0.20.1"],  # the key alone does not ask for the shared IP: lowest free
    },
    "dual-stack.yaml": {
        "default/web": ["192.168.50.101", "fd00:50::102"],  # RequireDualStack: one of each family
        "default/api": ["192.168.50.100", "fd00:50::100"],  # PreferDualStack: both, IPv4 first (MetalLB)
        "default/dns": ["fd00:50::101"],  # SingleStack: the family listed first only
        "default/git": ["192.168.50.120", "fd00:50::120"],  # both asked for by annotation
    },
    "ipv6.yaml": {
        "default/web6": ["2001:db8:10::"],  # MetalLB skips no IPv6 address: the /64's first
        "default/mail6": ["2001:db8:10::25"],
    },
    "namespace-pinned.yaml": {
        "shop/checkout": ["10.0.30.0"],  # env=prod namespace: prod pool (priority over shared)
        "team-a/dashboard": ["10.0.30.16"],  # team-a namespace and expose=public: team-a pool
        "default/blog": ["10.0.30.64"],  # everyone else: shared
    },
}

# example -> {"namespace/name": (layer 2 candidates, nodes excluded)} where the comments claim who announces.
ANNOUNCERS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "namespace-pinned.yaml": {"default/blog": (["n1"], ["n2"])},  # only nodes labelled for ingress
    "sharing.yaml": {"dns/dns-tcp": ([], [])},  # no Node objects: nobody is known to announce it
}


def test_the_table_covers_every_example() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_plan_gives_what_the_comments_claim(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", str(EXAMPLES / example), "-o", "json"])
    out, _ = capsys.readouterr()
    assert code == 0
    got: dict[str, list[str] | str] = {}
    for service in json.loads(out)["services"]:
        key = f"{service['namespace']}/{service['name']}"
        got[key] = service["ips"] if service["pending"] is None else f"pending: {service['pending']}"
    expected = EXPECTED[example]
    assert set(got) == set(expected)
    for key, want in expected.items():
        if isinstance(want, str):
            assert isinstance(got[key], str) and str(got[key]).startswith(want), (key, got[key])
        else:
            assert got[key] == want, key


@pytest.mark.parametrize("example", sorted(ANNOUNCERS))
def test_layer2_candidates_are_what_the_comments_claim(example: str) -> None:
    path = str(EXAMPLES / example)
    config, diagnostics = load_config_files([path])
    assert config is not None, diagnostics
    status = offline_status(config, allocate(config), origin=path)
    services: dict[str, Any] = {f"{s['namespace']}/{s['name']}": s for s in status["services"]}
    for key, (ranking, excluded) in ANNOUNCERS[example].items():
        election = services[key]["elections"]["layer2"]
        assert election["ranking"] == ranking, key
        assert [name for name, _ in election["excluded"]] == excluded, key


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_plan_and_status_share_the_service_and_pool_shapes(example: str) -> None:
    from supervisor.commands.plan import as_document

    path = str(EXAMPLES / example)
    config, _ = load_config_files([path])
    assert config is not None
    result = allocate(config)
    plan, status = as_document(result), offline_status(config, result, origin=path)
    assert plan["services"] == [{k: s[k] for k in ("namespace", "name", "ips", "pool", "pending", "problem")}
                                for s in status["services"]]
    assert [list(p) for p in plan["pools"]] == [["name", "total_v4", "assigned_v4", "available_v4", "total_v6",
                                                 "assigned_v6", "available_v6"]] * len(plan["pools"])
    assert plan["pools"] == [{k: v for k, v in p.items() if k != "addresses"} for p in status["pools"]]
