"""Each pool series is exported once in a cluster: by the controller (and `metalloid run`), never by speakers."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from supervisor.allocating.results import AllocationResult, Assignment, PoolCounts
from supervisor.config.model import Config, ServiceKey
from supervisor.messages import AllocationDone, ConfigLoaded
from supervisor.serving.metrics import MetricsRegistry
from supervisor.supervising.settings import WorkerSettings
from supervisor.supervising.state import ALLOCATOR
from supervisor.supervising.supervisor import Supervisor, SupervisorSettings, WorkerSpec

POOL = (("pool", "first-pool"),)


def allocated(*services: str) -> AllocationResult:
    keys = [ServiceKey(namespace="default", name=n) for n in services]
    return AllocationResult(
        assignments={k: Assignment(service=k, ips=(ip_address(f"10.0.10.{10 + i}"),), pool="first-pool")
                     for i, k in enumerate(keys)},
        pending={},
        pools=(PoolCounts(pool="first-pool", total_v4=90, assigned_v4=len(keys), total_v6=0, assigned_v6=0),),
    )  # fmt: skip


def route(pool_metrics: bool, result: AllocationResult) -> MetricsRegistry:
    metrics = MetricsRegistry(process_metrics=False)
    spec = WorkerSpec(name="allocator", role=ALLOCATOR, entry="x:y",
                      settings=WorkerSettings(name="allocator", node_name="n1"))  # fmt: skip
    sup = Supervisor([spec], SupervisorSettings(node_name="n1", mode="kubernetes", pool_metrics=pool_metrics),
                     metrics=metrics)  # fmt: skip
    sup.state.accept_config(ConfigLoaded(generation=1, config=Config(), origin="test"))
    sup._route(sup._slots[0], AllocationDone(generation=1, result=result))
    return metrics


@pytest.mark.parametrize("pool_metrics", [True, False], ids=["controller-or-run", "speaker"])
def test_allocator_gauges_only_where_metallb_exports_them(pool_metrics: bool) -> None:
    metrics = route(pool_metrics, allocated("web", "dns"))
    body = metrics.render()[0].decode()
    if pool_metrics:
        assert metrics.value("metallb_allocator_services_allocated_total", dict(POOL)) == 2
        assert metrics.value("metallb_allocator_addresses_in_use_total", dict(POOL)) == 2
        assert metrics.value("metallb_allocator_addresses_total", dict(POOL)) == 90
    else:
        assert "metallb_allocator_addresses_total{" not in body
        assert "metallb_allocator_services_allocated_total{" not in body

