"""A speaker's pool counts come from the config's pools and the IPs in Service status."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from supervisor.config.parsing import parse_objects
from supervisor.kubernetes.assignments import speaker_allocation

POOLS = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first-pool, namespace: metallb-system}
spec:
  addresses: [10.0.10.10-10.0.10.99]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: dual, namespace: metallb-system}
spec:
  addresses: [192.168.1.0/30, "fd00::/126"]
"""


def _service(name: str, *ips: str, shared: bool = False) -> dict[str, Any]:
    annotations = {"metallb.io/allow-shared-ip": "k"} if shared else {}
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80 if name != "b" else 81}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


CASES = [
    pytest.param([], {"first-pool": (90, 0, 0, 0), "dual": (4, 0, 4, 0)}, id="nothing-assigned"),
    pytest.param([_service("a", "10.0.10.10"), _service("c", "10.0.10.11")],
                 {"first-pool": (90, 2, 0, 0), "dual": (4, 0, 4, 0)}, id="two-ips-one-pool"),
    pytest.param([_service("a", "10.0.10.10", shared=True), _service("b", "10.0.10.10", shared=True)],
                 {"first-pool": (90, 1, 0, 0), "dual": (4, 0, 4, 0)}, id="a-shared-ip-counts-once"),
    pytest.param([_service("a", "192.168.1.1", "fd00::1")],
                 {"first-pool": (90, 0, 0, 0), "dual": (4, 1, 4, 1)}, id="dual-stack"),
]


@pytest.mark.parametrize(("services", "expected"), CASES)
def test_speaker_allocation_counts_pools(services: list[dict[str, Any]],
                                         expected: dict[str, tuple[int, int, int, int]]) -> None:
    config, diagnostics = parse_objects([*yaml.safe_load_all(POOLS), *services])
    assert config is not None, diagnostics
    result = speaker_allocation(config)
    counts = {c.pool: (c.total_v4, c.assigned_v4, c.total_v6, c.assigned_v6) for c in result.pools}
    assert counts == expected
