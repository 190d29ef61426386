"""The monitoring component: metrics Services, ServiceMonitors and the
runbook's recommended alerts, on MetalLB's metric names."""

from __future__ import annotations

import re

import pytest

from tests.deploy_support import Obj, find, kustomize

# Metric names in an expression: identifiers not followed by "(" (functions,
# aggregations) and not PromQL keywords.
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        called = expr[match.end():].lstrip().startswith("(")
        if not called and match.group() not in _KEYWORDS:
            names.add(match.group())
    return names


def alerts() -> dict[str, Obj]:
    rule = find(kustomize("with-monitoring"), "PrometheusRule", "metalloid")
    out: dict[str, Obj] = {}
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            assert r["alert"] not in out, f"duplicate alert {r['alert']}"
            out[r["alert"]] = r
    return out


def test_metric_name_extraction() -> None:
    assert metric_names('sum by (pool) (rate(metallb_x_total{a="b"}[5m])) > up') == {"metallb_x_total", "up"}


# The runbook's three recommended alerts, as (alert, metrics it must use,
# a fragment of its threshold).
RUNBOOK_ALERTS = [
    ("MetalloidAddressPoolLow", {"metallb_allocator_addresses_total", "metallb_allocator_addresses_in_use_total"},
     "< 10"),
    ("MetalloidSpeakersFewerThanNodes",
     {"kube_daemonset_status_number_ready", "kube_daemonset_status_desired_number_scheduled"}, "<"),
    ("MetalloidControllerUpdateErrors", {"metallb_k8s_client_update_errors_total"}, "> 0"),
]


@pytest.mark.parametrize(("alert", "metrics", "threshold"), RUNBOOK_ALERTS, ids=[a[0] for a in RUNBOOK_ALERTS])
def test_runbook_alerts_are_there(alert: str, metrics: set[str], threshold: str) -> None:
    rule = alerts()[alert]
    assert metric_names(rule["expr"]) == metrics
    assert threshold in rule["expr"]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_uses_only_known_metrics() -> None:
    # MetalLB's names (DESIGN.md), kube-state-metrics' and Prometheus' own.
    known = {
        "metallb_allocator_addresses_total", "metallb_allocator_addresses_in_use_total",
        "metallb_k8s_client_update_errors_total", "metallb_k8s_client_config_stale_bool",
        "metallb_k8s_client_config_loaded_bool", "kube_daemonset_status_number_ready",
        "kube_daemonset_status_desired_number_scheduled", "up",
        # metalloid's own (docs/operating.md, the metrics table).
        "metalloid_announcer_failed",
    }
    for name, rule in alerts().items():
        assert metric_names(rule["expr"]) <= known, name
        assert re.fullmatch(r"[0-9]+[smh]", rule.get("for", "0s")), name


def test_balanced_expressions() -> None:
    for name, rule in alerts().items():
        expr = rule["expr"]
        for opening, closing in ("()", "{}", "[]"):
            assert expr.count(opening) == expr.count(closing), name


def test_job_labels_match_the_metrics_services() -> None:
    objects = kustomize("with-monitoring")
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    jobs = set(re.findall(r'job="([^"]+)"', " ".join(r["expr"] for r in alerts().values())))
    assert jobs and jobs <= services


@pytest.mark.parametrize("component", ["controller", "speaker"])
def test_service_monitors_scrape_the_monitoring_port(component: str) -> None:
    objects = kustomize("with-monitoring")
    monitor = find(objects, "ServiceMonitor", component)
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["labels"]["component"] == component)
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["metallb-system"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["monitoring"]
    assert service["spec"]["selector"] == {"app": "metalloid", "component": component}
    assert service["spec"]["ports"][0]["port"] == 7472


def test_monitoring_is_optional() -> None:
    # The base must apply on clusters without the Prometheus Operator CRDs.
    kinds = {o["kind"] for o in kustomize(".")}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
