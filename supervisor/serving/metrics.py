"""The node's one Prometheus registry: workers describe changes, the supervisor applies them.

Why the supervisor owns the registry instead of prometheus-client's multiprocess
mode: multiprocess mode keeps one file per PID and metric, leaves a dead worker's
live gauges behind until `mark_process_dead(pid)`, piles files up across
restarts, and must be configured before the first import (FACTS.md). Here a
worker sends a `MetricUpdate` value over the queue it already has (~12 µs per
update), never imports prometheus_client, and a restarted worker simply sends
its present state again. The cost: an update in flight when a worker is killed
is lost, which is harmless for gauges (they are re-set on replay) and loses at
most a few counts.

Names are MetalLB's, exactly as client_golang exposes them, so dashboards and
alerts keep working. client_golang exposes a counter under the name it was
given (`metallb_layer2_requests_received`, no `_total`), while prometheus-client
would append `_total` and add `_created` series; so this module keeps its own
series and renders the text format (0.0.4) itself from what the
`CollectorRegistry` collects. Other collectors registered on `.registry` (the
supervisor's process metrics) are rendered the way prometheus-client would.

A bad update (wrong kind, other label names, an invalid name) is logged and
dropped: a plugin's metric bug must never take the supervisor down.
"""

from __future__ import annotations

import decimal
import importlib.machinery
import importlib.util
import logging
import math
import re
import sys
import threading
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from supervisor.messages import MetricKind, MetricOp, MetricUpdate

log = logging.getLogger(__name__)

_PACKAGE = "prometheus_client"


def _load_prometheus_client() -> tuple[Any, Any, Any, Any]:
    """prometheus_client's Metric, ProcessCollector, Collector and CollectorRegistry, without its `__init__`.

    The package's `__init__` imports everything it has (exposition with its
    HTTP, WSGI, ASGI and push-gateway code, the metric classes, the GC and
    platform collectors, OpenMetrics): 33 modules and 1.2 MiB PSS beyond what
    the supervisor imports anyway, ~80 ms of its start (2026-12-07). These four
    need six. While they load, `prometheus_client` in sys.modules is a bare
    package with the real search path; it is removed afterwards, so a later
    `import prometheus_client` anywhere (a plugin, a test) still runs the real
    `__init__` and finds these submodules loaded. The layer 2 plugin loads
    pyroute2's codec the same way (plugins/layer2/rtnetlink.py).
    """
    if _PACKAGE in sys.modules:  # the real package is loaded already: nothing to save
        return _import_prometheus_client()
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("prometheus_client is not installed (pip install prometheus-client)")
    stand_in = types.ModuleType(_PACKAGE)
    stand_in.__path__ = list(spec.submodule_search_locations)
    stand_in.__spec__ = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
    stand_in.__spec__.submodule_search_locations = stand_in.__path__
    sys.modules[_PACKAGE] = stand_in
    try:
        return _import_prometheus_client()
    finally:
        if sys.modules.get(_PACKAGE) is stand_in:
            del sys.modules[_PACKAGE]


def _import_prometheus_client() -> tuple[Any, Any, Any, Any]:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import Collector, CollectorRegistry

    return Metric, ProcessCollector, Collector, CollectorRegistry


if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.process_collector import ProcessCollector
    from prometheus_client.registry import Collector, CollectorRegistry
else:
    Metric, ProcessCollector, Collector, CollectorRegistry = _load_prometheus_client()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Sub-second failover is the point of metalloid: buckets resolve 50 ms steps
# below a second and still show multi-second outliers.
FAILOVER_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
# prometheus-client's (and client_golang's) defaults, for any other histogram.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    "metalloid_failover_detection_seconds": FAILOVER_BUCKETS,
    "metalloid_failover_seconds": FAILOVER_BUCKETS,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FamilySpec:
    name: str
    kind: MetricKind
    documentation: str
    label_names: tuple[str, ...] = ()


_G, _C = MetricKind.GAUGE, MetricKind.COUNTER

# MetalLB's metrics, with MetalLB's help texts and labels (internal/allocator/stats.go,
# speaker/main.go, internal/layer2/stats.go, internal/bgp/native/stats.go,
# internal/k8s/controllers/stats.go). Declared in every process; a family
# shows series only where MetalLB's would: allocator gauges in the controller
# (and `metalloid run`), speaker, layer2 and bgp series in speakers.
METALLB_FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(name="metallb_allocator_addresses_total", kind=_G,
               documentation="Number of usable IP addresses, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_allocator_ipv4_addresses_total", kind=_G,
               documentation="Number of usable IPV4 addresses, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_allocator_ipv6_addresses_total", kind=_G,
               documentation="Number of usable IPV6 addresses, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_allocator_addresses_in_use_total", kind=_G,
               documentation="Number of IP addresses in use, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_allocator_ipv4_addresses_in_use_total", kind=_G,
               documentation="Number of IPV4 addresses in use, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_allocator_ipv6_addresses_in_use_total", kind=_G,
               documentation="Number of IPV6 addresses in use, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_allocator_services_allocated_total", kind=_G,
               documentation="Number of services allocated, per pool", label_names=("pool",)),
    FamilySpec(name="metallb_speaker_announced", kind=_G,
               documentation="Services being announced from this node. This is desired state, "
               "it does not guarantee that the routing protocols have converged.",
               label_names=("service", "protocol", "node", "ip")),
    FamilySpec(name="metallb_layer2_requests_received", kind=_C,
               documentation="Number of layer2 requests received for owned IPs", label_names=("ip",)),
    FamilySpec(name="metallb_layer2_responses_sent", kind=_C,
               documentation="Number of layer2 responses sent for owned IPs in response to requests",
               label_names=("ip",)),
    FamilySpec(name="metallb_layer2_gratuitous_sent", kind=_C,
               documentation="Number of gratuitous layer2 packets sent for owned IPs as a result of failovers",
               label_names=("ip",)),
    # The bgp announcer drives FRR: MetalLB's FRR-mode families and labels (its frr-metrics
    # sidecar, frr-tools/metrics/collector/bgp.go and bfd.go), `peer` and `vrf`, exported by
    # plugins/bgp/frrmetrics.py (a test keeps the two in agreement). pending_prefixes_total is
    # native mode's only, with `peer`.
    FamilySpec(name="metallb_bgp_session_up", kind=_G,
               documentation="BGP session state (1 is up, 0 is down)", label_names=("peer", "vrf")),
    FamilySpec(name="metallb_bgp_updates_total", kind=_C,
               documentation="Number of BGP UPDATE messages sent", label_names=("peer", "vrf")),
    FamilySpec(name="metallb_bgp_announced_prefixes_total", kind=_G,
               documentation="Number of prefixes currently being advertised on the BGP session",
               label_names=("peer", "vrf")),
    FamilySpec(name="metallb_bgp_pending_prefixes_total", kind=_G,
               documentation="Number of prefixes that should be advertised on the BGP session",
               label_names=("peer",)),
    *(FamilySpec(name=f"metallb_bgp_{name}", kind=_C, documentation=f"Number of {what}",
                 label_names=("peer", "vrf"))
      for name, what in (("opens_sent", "BGP open messages sent"), ("opens_received", "BGP open messages received"),
                         ("notifications_sent", "BGP notification messages sent"),
                         ("updates_total_received", "BGP UPDATE messages received"),
                         ("keepalives_sent", "BGP keepalive messages sent"),
                         ("keepalives_received", "BGP keepalive messages received"),
                         ("route_refresh_sent", "BGP route refresh messages sent"),
                         ("total_sent", "total BGP messages sent"), ("total_received", "total BGP messages received"))),
    FamilySpec(name="metallb_bfd_session_up", kind=_G, documentation="BFD session state (1 is up, 0 is down)",
               label_names=("peer", "vrf")),
    *(FamilySpec(name=f"metallb_bfd_{name}", kind=_C, documentation=f"Number of {what}", label_names=("peer", "vrf"))
      for name, what in (("control_packet_input", "received BFD control packets"),
                         ("control_packet_output", "sent BFD control packets"),
                         ("echo_packet_input", "received BFD echo packets"),
                         ("echo_packet_output", "sent BFD echo packets"),
                         ("session_up_events", "BFD session up events"),
                         ("session_down_events", "BFD session down events"),
                         ("zebra_notifications", "BFD zebra notifications"))),
    FamilySpec(name="metallb_k8s_client_updates_total", kind=_C,
               documentation="Number of k8s object updates that have been processed."),
    FamilySpec(name="metallb_k8s_client_update_errors_total", kind=_C,
               documentation="Number of k8s object updates that failed for some reason."),
    FamilySpec(name="metallb_k8s_client_config_loaded_bool", kind=_G,
               documentation="1 if the MetalLB configuration was successfully loaded at least once."),
    FamilySpec(name="metallb_k8s_client_config_stale_bool", kind=_G,
               documentation="1 if running on a stale configuration, because the latest config failed to load."),
)


@dataclass(slots=True)
class _Histogram:
    bounds: tuple[float, ...]
    buckets: list[int]
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.buckets[i] += 1
        self.total += value
        self.count += 1


@dataclass(slots=True)
class _Family:
    spec: FamilySpec
    series: dict[tuple[str, ...], float | _Histogram] = field(default_factory=dict)

    def new_value(self) -> float | _Histogram:
        if self.spec.kind is MetricKind.HISTOGRAM:
            bounds = (*HISTOGRAM_BUCKETS.get(self.spec.name, DEFAULT_BUCKETS), math.inf)
            return _Histogram(bounds=bounds, buckets=[0] * len(bounds))
        return 0.0


class MetricsRegistry:
    """Applies `MetricUpdate`s and renders /metrics. Thread-safe (HTTP reads, the loop writes)."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        for spec in METALLB_FAMILIES:
            self._declare(spec)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_FamiliesCollector(self))
        if process_metrics:
            ProcessCollector(registry=self.registry)

    def _declare(self, spec: FamilySpec) -> _Family:
        family = _Family(spec=spec)
        if not spec.label_names:
            # An unlabelled series exists from the start (0), as in client_golang.
            family.series[()] = family.new_value()
        self._families[spec.name] = family
        return family

    def apply(self, update: MetricUpdate) -> None:
        """Apply one update; log and drop it if it contradicts the family's declaration."""
        problem = self._apply(update)
        if problem:
            log.warning("metric.rejected name=%s op=%s problem=%s", update.name, update.op.value, problem)

    def _apply(self, update: MetricUpdate) -> str | None:
        names = tuple(k for k, _ in update.labels)
        with self._lock:
            family = self._families.get(update.name)
            if family is None:
                if update.op is MetricOp.REMOVE:
                    return None
                problem = _invalid(update.name, names)
                if problem:
                    return problem
                spec = FamilySpec(name=update.name, kind=update.kind, documentation=update.documentation,
                                  label_names=names)
                family = self._declare(spec)
            spec = family.spec
            if update.op is MetricOp.REMOVE:
                return _remove(family, dict(update.labels))
            if update.kind is not spec.kind:
                return f"declared as a {spec.kind.value}, updated as a {update.kind.value}"
            if set(names) != set(spec.label_names) or len(names) != len(spec.label_names):
                return f"label names {sorted(names)} differ from the declared {list(spec.label_names)}"
            labels = dict(update.labels)
            key = tuple(labels[n] for n in spec.label_names)
            current = family.series.get(key)
            if current is None:
                current = family.new_value()
            return _change(family, key, current, update)

    def render(self) -> tuple[bytes, str]:
        """The /metrics body in the Prometheus text format 0.0.4, and its content type."""
        return render_text(self.registry.collect()), CONTENT_TYPE

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The current value of a counter or gauge series (for tests and /status)."""
        with self._lock:
            family = self._families.get(name)
            if family is None:
                return None
            labels = labels or {}
            key = tuple(labels.get(n, "") for n in family.spec.label_names)
            current = family.series.get(key)
            return current if isinstance(current, float) else None

    def _collect(self) -> Iterator[Metric]:
        with self._lock:
            for family in self._families.values():
                if family.series:
                    yield _to_metric(family)


def _invalid(name: str, label_names: tuple[str, ...]) -> str | None:
    if not _NAME.match(name):
        return "not a valid Prometheus metric name"
    bad = [n for n in label_names if not _LABEL.match(n) or n.startswith("__")]
    if bad or len(set(label_names)) != len(label_names):
        return f"invalid or repeated label names {label_names}"
    return None


def _remove(family: _Family, labels: dict[str, str]) -> str | None:
    """Drop every series matching `labels` (a subset matches, like client_golang's DeletePartialMatch)."""
    names = family.spec.label_names
    if not names:
        family.series[()] = family.new_value()
        return None
    unknown = set(labels) - set(names)
    if unknown:
        return f"REMOVE with labels {sorted(unknown)} the family does not have"
    index = [(names.index(k), v) for k, v in labels.items()]
    for key in [k for k in family.series if all(k[i] == v for i, v in index)]:
        del family.series[key]
    return None


def _change(family: _Family, key: tuple[str, ...], current: float | _Histogram, update: MetricUpdate) -> str | None:
    match update.op, current:
        case MetricOp.OBSERVE, _Histogram():
            current.observe(update.value)
        case MetricOp.INC, float():
            if family.spec.kind is MetricKind.COUNTER and update.value < 0:
                return "a counter cannot decrease"
            family.series[key] = current + update.value
            return None
        case MetricOp.SET, float():
            # Allowed on counters too: the supervisor may count itself (restarts)
            # and send the total; the sender owns monotonicity.
            family.series[key] = update.value
            return None
        case _:
            return f"{update.op.value} does not apply to a {family.spec.kind.value}"
    family.series[key] = current
    return None


def _to_metric(family: _Family) -> Metric:
    spec = family.spec
    metric = Metric(spec.name, spec.documentation, spec.kind.value)
    for key, value in sorted(family.series.items()):
        labels = dict(zip(spec.label_names, key, strict=True))
        if isinstance(value, _Histogram):
            for bound, count in zip(value.bounds, value.buckets, strict=True):
                metric.add_sample(spec.name + "_bucket", {**labels, "le": go_float(bound)}, count)
            metric.add_sample(spec.name + "_sum", labels, value.total)
            metric.add_sample(spec.name + "_count", labels, value.count)
        else:
            metric.add_sample(spec.name, labels, value)
    return metric


class _FamiliesCollector(Collector):
    def __init__(self, owner: MetricsRegistry) -> None:
        self._owner = owner

    def collect(self) -> Iterable[Metric]:
        return list(self._owner._collect())


def render_text(metrics: Iterable[Metric]) -> bytes:
    """Render metric families in the text format 0.0.4 under their exact names.

    A counter is named by its samples: ours carry the family's own name
    (MetalLB's, with or without `_total`); prometheus-client's own counters
    carry `<name>_total`. `_created` series (prometheus-client only) are dropped,
    as client_golang has none.
    """
    out: list[str] = []
    for metric in metrics:
        samples = [s for s in metric.samples if not s.name.endswith("_created")]
        name, kind = metric.name, metric.type
        if kind == "counter" and not any(s.name == name for s in samples):
            name += "_total"
        if kind == "unknown":
            kind = "untyped"
        if kind not in ("counter", "gauge", "histogram", "summary", "untyped"):
            kind = "untyped"
        doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        for s in samples:
            # Sorted by name with `le` last, as client_golang writes them.
            pairs = sorted(s.labels.items(), key=lambda kv: (kv[0] == "le", kv[0]))
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
            out.append(f"{s.name}{{{labels}}} {go_float(s.value)}\n" if labels
                       else f"{s.name} {go_float(s.value)}\n")
    return "".join(out).encode()


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def go_float(value: float) -> str:
    """Format a value as client_golang does (Go's shortest %g): 90, 0.25, 3.2595968e+07, +Inf."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    number = decimal.Decimal(repr(float(value))).normalize()
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    magnitude = len(digits) + exponent - 1
    # Go's shortest 'g' switches to an exponent below 1e-4 and from 1e6 up.
    if -4 <= magnitude < 6:
        return format(number, "f")
    mantissa = "".join(map(str, digits))
    mantissa = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if value < 0 else ''}{mantissa}e{'-' if magnitude < 0 else '+'}{abs(magnitude):02d}"
