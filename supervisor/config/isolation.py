"""Per-object fault isolation: which errors reject a config, which stay with their object.

MetalLB draws the line the same way. Its config objects (IPAddressPool,
L2Advertisement, BGP kinds…) are parsed as one configuration: one invalid
object and the whole new configuration is refused, the last good one stays in
force and `metallb_k8s_client_config_stale_bool` turns 1. A Service, though,
is reconciled on its own: a Service that sets both `spec.loadBalancerIP` and
`metallb.io/loadBalancerIPs`, or asks for an unparsable IP, gets an Event and
stays without an IP while every other Service proceeds.

So here: an error about a Service (kind `Service`, named `namespace/name`)
becomes that Service's `problem` (the allocator leaves it pending with that
reason) and an error about an EndpointSlice stays with the slice; every other
error is config-level. Pure: diagnostics and a Config in, a Config out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from supervisor.config.diagnostics import Diagnostic
from supervisor.config.model import Config, Service, ServiceKey, Source

# Kinds whose errors are confined to the object (MetalLB reconciles them one by one).
OBJECT_KINDS = frozenset({"Service", "EndpointSlice"})


def is_object_error(diagnostic: Diagnostic) -> bool:
    """An error that concerns one Service or EndpointSlice only."""
    return diagnostic.is_error and diagnostic.kind in OBJECT_KINDS


def config_errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The errors that make the whole config invalid (the last good one stays in force)."""
    return [d for d in diagnostics if d.is_error and d.kind not in OBJECT_KINDS]


def object_errors(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return [d for d in diagnostics if is_object_error(d)]


def isolate(config: Config, diagnostics: Sequence[Diagnostic]) -> Config:
    """`config` with each erroneous Service carrying its `problem`, later duplicates dropped.

    A second Service of the same namespace/name (a file-only mistake) is
    dropped, the first one wins, as the allocator's own rule; the duplicate's
    error names both. Errors about a Service that could not be parsed at all
    stay diagnostics: there is no Service to mark.
    """
    services, dropped = _first_of_each(config.services)
    problems: dict[ServiceKey, list[str]] = {}
    for d in diagnostics:
        if d.is_error and d.kind == "Service" and d.source not in dropped:
            problems.setdefault(ServiceKey.parse(d.name), []).append(d.message)
    if not problems and len(services) == len(config.services):
        return config
    marked = tuple(
        replace(s, problem=_problem_text(problems[s.key])) if s.key in problems else s for s in services
    )
    return replace(config, services=marked)


def _first_of_each(services: Iterable[Service]) -> tuple[tuple[Service, ...], set[Source]]:
    kept: dict[ServiceKey, Service] = {}
    dropped: set[Source] = set()
    for service in services:
        if service.key in kept:
            # Only file objects can repeat a key (the API cannot); their sources are distinct lines.
            if service.source.line:
                dropped.add(service.source)
        else:
            kept[service.key] = service
    return tuple(kept.values()), dropped


def _problem_text(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return f"{unique[0]} (and {len(unique) - 1} more: {'; '.join(unique[1:])})"
