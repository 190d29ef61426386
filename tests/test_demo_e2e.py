"""End to end: `metalloid demo` in CI, asserting on what it observed, not its wording."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from supervisor.lab.netns import list_netns

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo() -> dict[str, object]:
    if os.geteuid() != 0:
        pytest.fail("the demo test needs root (CI runs as root)")
    prefix = f"mle{os.getpid() % 10000}"
    proc = subprocess.run(
        [sys.executable, "-m", "supervisor.cli", "demo", "--json", "--prefix", prefix],
        capture_output=True, text=True, timeout=180,
    )
    leftovers = [n for n in list_netns() if n.startswith(prefix + "-")]
    out = proc.stdout
    result = json.loads(out[out.index("\n{") + 1:]) if "\n{" in out else {}
    return {"rc": proc.returncode, "result": result, "leftovers": leftovers, "output": out + proc.stderr}


def test_demo_succeeds(demo: dict[str, object]) -> None:
    assert demo["rc"] == 0, demo["output"]


def test_ingress_gets_first_pool_ip_and_pool_counts(demo: dict[str, object]) -> None:
    result = demo["result"]
    assert isinstance(result, dict)
    services = {f"{s['namespace']}/{s['name']}": s for s in result["services"]}
    assert services["ingress-nginx/ingress-nginx-controller"]["ips"] == ["10.0.10.10"]
    pool = next(p for p in result["pools"] if p["name"] == "first-pool")
    assert (pool["total_v4"], pool["assigned_v4"], pool["available_v4"]) == (90, 1, 89)


def test_client_resolves_the_owner_and_nothing_else(demo: dict[str, object]) -> None:
    result = demo["result"]
    assert isinstance(result, dict)
    assert result["client_saw_mac"] == result["owner_mac"] is not None
    assert result["client_reached"] == result["owner_before"]
    assert result["unanswered_ip_resolved"] is False


def test_failover_is_sub_second(demo: dict[str, object]) -> None:
    result = demo["result"]
    assert isinstance(result, dict)
    assert result["owner_after"] not in (None, result["owner_before"])
    assert result["outage_seconds"] is not None and result["outage_seconds"] < 1.0


def test_pihole_pending_because_its_ip_is_in_no_pool(demo: dict[str, object]) -> None:
    result = demo["result"]
    assert isinstance(result, dict)
    assert "10.0.0.200" in result["pending"]["pihole/pi-hole"]


def test_lab_is_removed(demo: dict[str, object]) -> None:
    assert demo["leftovers"] == []
