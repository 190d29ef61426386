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
    errors are its own and do not mark the first. Errors about a Service that
    could not be parsed at all stay diagnostics: there is no Service to mark.
    """
    copies: dict[ServiceKey, list[Service]] = {}
    for service in config.services:
        copies.setdefault(service.key, []).append(service)
    problems: dict[ServiceKey, list[str]] = {}
    for d in diagnostics:
        if not d.is_error or d.kind != "Service":
            continue
        key = ServiceKey.parse(d.name)
        found = copies.get(key)
        if found and _owner(found, d.source) is found[0]:
            problems.setdefault(key, []).append(d.message)
    if not problems and len(copies) == len(config.services):
        return config
    marked = tuple(
        replace(found[0], problem=_problem_text(problems[key])) if key in problems else found[0]
        for key, found in copies.items()
    )
    return replace(config, services=marked)


def _owner(copies: list[Service], source: Source) -> Service:
    """Which copy of a repeated Service a diagnostic at `source` belongs to: the last one starting before it."""
    before = [s for s in copies if s.source.file == source.file and s.source.line <= source.line]
    return max(before, key=lambda s: s.source.line) if before else copies[0]


def _problem_text(messages: list[str]) -> str:
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return f"{unique[0]} (and {len(unique) - 1} more: {'; '.join(unique[1:])})"
