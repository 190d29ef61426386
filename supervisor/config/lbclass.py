"""Which Services this instance serves: MetalLB's `--lb-class` rule, in one place.

A Service is ours when it is `type: LoadBalancer` and its
`spec.loadBalancerClass` is the class this instance was given: without a
class (`--lb-class` unset or empty, MetalLB's default "") only Services
without one; with a class only Services of exactly that class. Every other
Service belongs to another load balancer: we neither assign it an IP, nor
judge its spec, nor announce it (MetalLB's `filterByLoadBalancerClass`).

Everyone who asks the question calls this module: the Kubernetes watcher
(which hands on only our Services), the status writer (raw API objects), the
allocator and `metalloid plan`. It does not read or write anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from supervisor.config.model import Config, Service


def serves(service_class: str | None, lb_class: str | None) -> bool:
    """True when a Service of `service_class` is served by an instance of `lb_class`.

    An empty string is no class, on both sides: MetalLB's flag defaults to ""
    and an empty METALLOID_LB_CLASS must not select nothing at all.
    """
    return (service_class or None) == (lb_class or None)


def is_ours(service: Service, lb_class: str | None) -> bool:
    """True when `service` is a LoadBalancer Service this instance of `lb_class` serves."""
    return service.is_load_balancer and serves(service.load_balancer_class, lb_class)


def is_ours_object(obj: Mapping[str, Any], lb_class: str | None) -> bool:
    """`is_ours` for a raw API Service object (the status writer works on those, not on the model)."""
    spec = obj.get("spec") or {}
    service_class = spec.get("loadBalancerClass")
    return spec.get("type") == "LoadBalancer" and serves(
        str(service_class) if service_class is not None else None, lb_class)


def keep_ours(config: Config, lb_class: str | None) -> Config:
    """`config` with only the Services of our class, which lose their class.

    Downstream (validation, allocator, announcers) then serves the default
    class and need not know which one this instance was given. A Service of
    our class that is not a LoadBalancer stays (`is_ours` still says no).
    """
    if not (lb_class or None) and all(s.load_balancer_class is None for s in config.services):
        return config
    kept = tuple(replace(s, load_balancer_class=None) for s in config.services
                 if serves(s.load_balancer_class, lb_class))
    return replace(config, services=kept)
