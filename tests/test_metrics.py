"""The supervisor's metrics registry: MetalLB's exact names, updates, REMOVE, bad updates."""

from __future__ import annotations

import re

import pytest

from supervisor.messages import MetricKind, MetricOp, MetricUpdate
from supervisor.serving.metrics import METALLB_FAMILIES, MetricsRegistry, go_float

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_exposition(text: str) -> tuple[dict[str, tuple[str, str]], Samples]:
    """{family: (type, help)} and {(sample name, labels): value}, names exactly as written."""
    families: dict[str, list[str]] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            families.setdefault(name, ["", ""])[1] = doc
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            families.setdefault(name, ["", ""])[0] = kind
        elif line:
            found = _SAMPLE.match(line)
            assert found, f"unparseable line {line!r}"
            labels = frozenset(_LABEL.findall(found.group(2) or ""))
            samples[(found.group(1), labels)] = float(found.group(3))
    return {k: (v[0], v[1]) for k, v in families.items()}, samples


def render(registry: MetricsRegistry) -> str:
    body, content_type = registry.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return body.decode()


def gauge(name: str, value: float, **labels: str) -> MetricUpdate:
    return MetricUpdate(name=name, kind=MetricKind.GAUGE, documentation="ignored for declared names",
                        labels=tuple(labels.items()), op=MetricOp.SET, value=value)


def counter(name: str, value: float = 1.0, **labels: str) -> MetricUpdate:
    return MetricUpdate(name=name, kind=MetricKind.COUNTER, documentation="doc",
                        labels=tuple(labels.items()), op=MetricOp.INC, value=value)


def test_homelab_pool_gauges_have_metallb_names() -> None:
    registry = MetricsRegistry(process_metrics=False)
    registry.apply(gauge("metallb_allocator_addresses_total", 90, pool="first-pool"))
    registry.apply(gauge("metallb_allocator_addresses_in_use_total", 1, pool="first-pool"))
    families, samples = parse_exposition(render(registry))
    assert samples[("metallb_allocator_addresses_total", frozenset({("pool", "first-pool")}))] == 90
    assert samples[("metallb_allocator_addresses_in_use_total", frozenset({("pool", "first-pool")}))] == 1
    assert families["metallb_allocator_addresses_total"] == ("gauge", "Number of usable IP addresses, per pool")
    assert 'metallb_allocator_addresses_total{pool="first-pool"} 90\n' in render(registry)


@pytest.mark.parametrize(
    "name",
    ["metallb_layer2_requests_received", "metallb_layer2_responses_sent", "metallb_layer2_gratuitous_sent"],
)
def test_layer2_counters_keep_their_name_without_total(name: str) -> None:
    registry = MetricsRegistry(process_metrics=False)
    registry.apply(counter(name, ip="10.0.10.10"))
    registry.apply(counter(name, 2, ip="10.0.10.10"))
    families, samples = parse_exposition(render(registry))
    assert families[name][0] == "counter"
    assert samples[(name, frozenset({("ip", "10.0.10.10")}))] == 3
    assert not any(s.startswith(name + "_") for s, _ in samples), "no _total or _created series"


def test_k8s_client_metrics_are_exposed_from_the_start() -> None:
    families, samples = parse_exposition(render(MetricsRegistry(process_metrics=False)))
    for name, kind in [
        ("metallb_k8s_client_updates_total", "counter"),
        ("metallb_k8s_client_update_errors_total", "counter"),
        ("metallb_k8s_client_config_loaded_bool", "gauge"),
        ("metallb_k8s_client_config_stale_bool", "gauge"),
    ]:
        assert families[name][0] == kind
        assert samples[(name, frozenset())] == 0


def test_every_declared_family_renders_under_its_exact_name() -> None:
    registry = MetricsRegistry(process_metrics=False)
    for spec in METALLB_FAMILIES:
        labels = tuple((n, "x") for n in spec.label_names)
        registry.apply(MetricUpdate(name=spec.name, kind=spec.kind, documentation="", labels=labels,
                                    op=MetricOp.SET, value=5))
    families, samples = parse_exposition(render(registry))
    for spec in METALLB_FAMILIES:
        assert families[spec.name] == (spec.kind.value, spec.documentation)
        assert samples[(spec.name, frozenset((n, "x") for n in spec.label_names))] == 5


def test_speaker_announced_remove_drops_the_series() -> None:
    registry = MetricsRegistry(process_metrics=False)
    labels = {"service": "ns/a", "protocol": "layer2", "node": "n1", "ip": "10.0.10.10"}
    other = {**labels, "service": "ns/b", "ip": "10.0.10.11"}
    registry.apply(gauge("metallb_speaker_announced", 1, **labels))
    registry.apply(gauge("metallb_speaker_announced", 1, **other))
    registry.apply(MetricUpdate(name="metallb_speaker_announced", kind=MetricKind.GAUGE, documentation="",
                                labels=tuple(labels.items()), op=MetricOp.REMOVE))
    _, samples = parse_exposition(render(registry))
    assert ("metallb_speaker_announced", frozenset(labels.items())) not in samples
    assert samples[("metallb_speaker_announced", frozenset(other.items()))] == 1


def test_remove_with_a_label_subset_drops_every_matching_series() -> None:
    registry = MetricsRegistry(process_metrics=False)
    for ip in ("10.0.10.10", "10.0.10.11"):
        registry.apply(gauge("metallb_speaker_announced", 1, service="ns/a", protocol="layer2", node="n1", ip=ip))
    registry.apply(gauge("metallb_speaker_announced", 1, service="ns/b", protocol="layer2", node="n1", ip="10.0.10.12"))
    registry.apply(MetricUpdate(name="metallb_speaker_announced", kind=MetricKind.GAUGE, documentation="",
                                labels=(("service", "ns/a"),), op=MetricOp.REMOVE))
    _, samples = parse_exposition(render(registry))
    assert [dict(labels)["service"] for name, labels in samples if name == "metallb_speaker_announced"] == ["ns/b"]


def test_unknown_names_are_created_from_the_first_update() -> None:
    registry = MetricsRegistry(process_metrics=False)
    registry.apply(MetricUpdate(name="metalloid_worker_restarts_total", kind=MetricKind.COUNTER,
                                documentation="Worker restarts, per worker", labels=(("worker", "allocator"),)))
    registry.apply(MetricUpdate(name="metalloid_queue_depth", kind=MetricKind.GAUGE, documentation="Queue depth",
                                labels=(("queue", "allocator"),), op=MetricOp.SET, value=3))
    families, samples = parse_exposition(render(registry))
    assert families["metalloid_worker_restarts_total"] == ("counter", "Worker restarts, per worker")
    assert samples[("metalloid_worker_restarts_total", frozenset({("worker", "allocator")}))] == 1
    assert samples[("metalloid_queue_depth", frozenset({("queue", "allocator")}))] == 3


def test_failover_histogram_has_sub_second_buckets() -> None:
    registry = MetricsRegistry(process_metrics=False)
    for value in (0.12, 0.31, 3.0):
        registry.apply(MetricUpdate(name="metalloid_failover_detection_seconds", kind=MetricKind.HISTOGRAM,
                                    documentation="Time from a peer's death to its detection",
                                    op=MetricOp.OBSERVE, value=value))
    families, samples = parse_exposition(render(registry))
    name = "metalloid_failover_detection_seconds"
    assert families[name][0] == "histogram"
    assert samples[(name + "_bucket", frozenset({("le", "0.15")}))] == 1
    assert samples[(name + "_bucket", frozenset({("le", "0.4")}))] == 2
    assert samples[(name + "_bucket", frozenset({("le", "+Inf")}))] == 3
    assert samples[(name + "_count", frozenset())] == 3
    assert samples[(name + "_sum", frozenset())] == pytest.approx(3.43)


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(counter("metallb_allocator_addresses_total", pool="p"), id="wrong-kind"),
        pytest.param(gauge("metallb_allocator_addresses_total", 1, pool="p", extra="x"), id="extra-label"),
        pytest.param(gauge("metallb_allocator_addresses_total", 1), id="missing-label"),
        pytest.param(counter("metallb_layer2_requests_received", -1, ip="x"), id="counter-decrease"),
        pytest.param(gauge("bad name", 1), id="invalid-name"),
        pytest.param(MetricUpdate(name="metallb_layer2_requests_received", kind=MetricKind.COUNTER,
                                  documentation="", labels=(("ip", "x"),), op=MetricOp.OBSERVE), id="observe-counter"),
    ],
)
def test_bad_updates_are_logged_and_dropped(update: MetricUpdate, caplog: pytest.LogCaptureFixture) -> None:
    registry = MetricsRegistry(process_metrics=False)
    before = render(registry)
    registry.apply(update)
    assert render(registry) == before
    assert "metric.rejected" in caplog.text


def test_label_values_are_escaped() -> None:
    registry = MetricsRegistry(process_metrics=False)
    registry.apply(gauge("metallb_allocator_addresses_total", 1, pool='we"ird\\pool'))
    assert 'metallb_allocator_addresses_total{pool="we\\"ird\\\\pool"} 1\n' in render(registry)


def test_process_metrics_render_with_prometheus_names() -> None:
    families, _ = parse_exposition(render(MetricsRegistry()))
    assert families["process_cpu_seconds_total"][0] == "counter"
    assert families["process_resident_memory_bytes"][0] == "gauge"


@pytest.mark.parametrize(
    ("value", "text"),
    [(90, "90"), (0, "0"), (0.25, "0.25"), (1e6, "1e+06"), (32595968, "3.2595968e+07"), (123456, "123456"),
     (1e-5, "1e-05"), (-2.5, "-2.5"), (float("inf"), "+Inf")],
)
def test_values_are_formatted_like_client_golang(value: float, text: str) -> None:
    assert go_float(value) == text
