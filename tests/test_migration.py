"""docs/migrating-from-metallb.md, step by step, against the fake API server, with `metalloid preflight`.

The cluster starts as one running MetalLB the runbook's way: its pool and
advertisement, Services holding the IPs MetalLB gave them, MetalLB's
controller and speaker pods, its ValidatingWebhookConfiguration
(failurePolicy Fail) and its BGPPeer CRD converting through that webhook.
The fake API server honours webhook configurations as unreachable (it runs no
Services), which is what MetalLB's is once its controller is scaled to 0.
Speakers (step 6) need network namespaces: tests/test_k8s_lab.py runs them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.cli import main
from supervisor.config import kept_fields
from supervisor.kubernetes.client import MERGE_PATCH, ApiError, RawClient
from supervisor.kubernetes.preflight import Finding, pruned, unknown_fields
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import RUNBOOK_L2, RUNBOOK_POOL, events_for, ingress, running_controller, service
from tests.runtime_helpers import wait_for

NS = "metallb-system"
CRDS = Path(__file__).resolve().parents[1] / "deploy" / "base" / "crds"
POOL_PATH = f"/apis/metallb.io/v1beta1/namespaces/{NS}/ipaddresspools/first-pool"
# MetalLB's own webhooks (config/manifests: six rules, failurePolicy Fail), reduced to what the test needs.
METALLB_WEBHOOKS = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "metallb-webhook-configuration"},
    "webhooks": [
        {
            "name": f"{plural[:-1]}validationwebhook.metallb.io",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": "metallb-webhook-service", "namespace": NS,
                                         "path": f"/validate-metallb-io-{version}-{plural[:-1]}"}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "rules": [{"apiGroups": ["metallb.io"], "apiVersions": [version], "operations": ["CREATE", "UPDATE"],
                       "resources": [plural]}],
        }
        for plural, version in (("ipaddresspools", "v1beta1"), ("l2advertisements", "v1beta1"),
                                ("bgppeers", "v1beta2"), ("bgpadvertisements", "v1beta1"))
    ],
}
METALLB_BGPPEER_CRD = {  # only what matters here: MetalLB converts BGPPeer versions through its webhook
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "bgppeers.metallb.io"},
    "spec": {"group": "metallb.io", "names": {"kind": "BGPPeer", "plural": "bgppeers"}, "scope": "Namespaced",
             "conversion": {"strategy": "Webhook", "webhook": {"clientConfig": {"service": {
                 "name": "metallb-webhook-service", "namespace": NS, "path": "/convert"}}}}},
}  # fmt: skip


def metallb_pod(name: str, component: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "metallb", "component": component}},
            "status": {"phase": "Running"}}  # fmt: skip


def running_metallb(api: FakeApiServer) -> None:
    for ns in (NS, "pihole"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    api.create(yaml.safe_load(RUNBOOK_POOL))
    api.create(yaml.safe_load(RUNBOOK_L2))
    api.create(METALLB_WEBHOOKS)
    api.create(METALLB_BGPPEER_CRD)
    api.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "controller", "namespace": NS},
                "spec": {"replicas": 1}})  # fmt: skip
    api.create({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "speaker", "namespace": NS},
                "spec": {}})  # fmt: skip
    for name, component in (("controller-6b8d9", "controller"), ("speaker-x7k2p", "speaker"),
                            ("speaker-q4w8z", "speaker")):  # fmt: skip
        api.create(metallb_pod(name, component))
        api.update_status("Pod", NS, name, {"phase": "Running"})
    # The IPs MetalLB gave, as it wrote them.
    for name, ip in (("pi-hole", "10.0.10.10"), ("web", "10.0.10.11")):
        api.create({**service(name, "pihole"), "metadata": {"name": name, "namespace": "pihole",
                    "annotations": {"metallb.io/ip-allocated-from-pool": "first-pool"}}})  # fmt: skip
        api.update_status("Service", "pihole", name, {"loadBalancer": {"ingress": [{"ip": ip}]}})


def preflight(api: FakeApiServer, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["preflight", "--api-server", api.url, "--crds", str(CRDS)])
    return code, capsys.readouterr().out


def apply(api: FakeApiServer, obj: dict[str, Any]) -> None:
    """kubectl apply: create, or replace what is there (the fake's test-side store, like a server-side apply)."""
    meta = obj["metadata"]
    try:
        current = api.get(obj["kind"], meta.get("namespace"), meta["name"])
    except Exception:
        api.create(obj)
        return
    replaced = copy.deepcopy(obj)
    replaced["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    api.store.update(api.store_resource(obj["kind"]), meta.get("namespace"), meta["name"], replaced, subresource=None)


def edit_pool(client: RawClient) -> None:
    """A pool edit, as a user or ArgoCD makes it (through the API, so admission applies)."""
    client.request("PATCH", POOL_PATH, body={"metadata": {"labels": {"edited": "yes"}}}, content_type=MERGE_PATCH)


def test_the_documented_switch_step_by_step(api: FakeApiServer, client: RawClient,
                                            capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    running_metallb(api)

    # 0. Look first: everything that would block is named, with its fix; exit 1.
    code, out = preflight(api, capsys)
    assert code == 1, out
    assert "BLOCKS ValidatingWebhookConfiguration/metallb-webhook-configuration: " in out
    assert "Fix: kubectl delete validatingwebhookconfiguration metallb-webhook-configuration" in out
    assert "BLOCKS CustomResourceDefinition/bgppeers.metallb.io: converts between its versions" in out
    for pod in ("controller-6b8d9", "speaker-x7k2p", "speaker-q4w8z"):
        assert f"BLOCKS Pod/{NS}/{pod}: MetalLB's " in out

    # 1. CRDs and RBAC: metalloid's CRDs replace MetalLB's (no conversion webhook any more).
    for path in sorted(CRDS.glob("*.yaml")):
        apply(api, yaml.safe_load(path.read_text()))
    code, out = preflight(api, capsys)
    assert "CustomResourceDefinition/" not in out and "would prune" not in out, out

    # 2. Membership key.
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "metalloid-memberlist", "namespace": NS},
                "data": {"secretkey": "c2VjcmV0"}})  # fmt: skip

    # 3. Stop MetalLB's controller (the fake has no kubelet: the test removes the pod the scale-down ends).
    client.request("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/controller", body={"spec": {"replicas": 0}},
                   content_type=MERGE_PATCH)  # fmt: skip
    client.request("DELETE", f"/api/v1/namespaces/{NS}/pods/controller-6b8d9")
    # Now the trap: MetalLB's webhook is still registered and nothing serves it.
    with pytest.raises(ApiError) as refused:
        edit_pool(client)
    assert refused.value.code == 500
    assert ('failed calling webhook "ipaddresspoolvalidationwebhook.metallb.io"' in refused.value.message
            and 'no endpoints available for service "metallb-webhook-service"' in refused.value.message)

    # 4. Delete MetalLB's webhook: pool edits work again.
    client.request("DELETE", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                   "metallb-webhook-configuration")  # fmt: skip
    edit_pool(client)
    assert api.get("IPAddressPool", NS, "first-pool")["metadata"]["labels"] == {"edited": "yes"}
    code, out = preflight(api, capsys)
    assert "ValidatingWebhookConfiguration" not in out and "controller-6b8d9" not in out, out
    assert code == 1  # MetalLB's speakers still run

    # 5. metalloid's controller adopts every IP unchanged, says nothing about them, and says Valid.
    with running_controller(api):
        wait_for(lambda: (api.list("ConfigurationState", NS) or [{}])[0].get("status", {}).get("result") == "Valid",
                 what="the controller's ConfigurationState")  # fmt: skip
        # Pool status is written after every Service of the same reconcile.
        wait_for(lambda: (api.get("IPAddressPool", NS, "first-pool").get("status") or {}).get("assignedIPv4") == 2,
                 what="the pool's status counting both adopted IPs")
        assert ingress(api, "pi-hole", "pihole") == ["10.0.10.10"]
        assert ingress(api, "web", "pihole") == ["10.0.10.11"]
        assert [e["reason"] for e in events_for(api, "pi-hole", "pihole")] == []

    # 6. Replace the speakers: MetalLB's DaemonSet goes (its pods with it).
    client.request("DELETE", f"/apis/apps/v1/namespaces/{NS}/daemonsets/speaker")
    for pod in ("speaker-x7k2p", "speaker-q4w8z"):
        client.request("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod}")

    # 7. Nothing blocks any more.
    code, out = preflight(api, capsys)
    assert code == 0, out
    assert "Nothing blocks the switch from MetalLB to metalloid." in out


def test_a_webhook_with_failure_policy_ignore_lets_edits_through(api: FakeApiServer, client: RawClient) -> None:
    running_metallb(api)
    ignoring = copy.deepcopy(METALLB_WEBHOOKS)
    for hook in ignoring["webhooks"]:  # type: ignore[attr-defined]
        hook["failurePolicy"] = "Ignore"
    apply(api, ignoring)
    edit_pool(client)  # no error: Ignore lets it through (a real API server first waits for the timeout)
    # Status writes are a subresource the rules do not name: never blocked, even with Fail.
    apply(api, METALLB_WEBHOOKS)
    client.request("PATCH", POOL_PATH + "/status", body={"status": {"assignedIPv4": 1}}, content_type=MERGE_PATCH)


def test_preflight_names_pools_outside_the_namespace_and_config_errors(
    api: FakeApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for ns in (NS, "other"):
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    api.create(yaml.safe_load(RUNBOOK_L2))
    stray = yaml.safe_load(RUNBOOK_POOL)
    stray["metadata"]["namespace"] = "other"
    api.create(stray)
    broken = yaml.safe_load(RUNBOOK_POOL)
    broken["metadata"]["name"] = "broken"
    broken["spec"]["addresses"] = ["10.0.20.0/33"]
    api.create(broken)
    code, out = preflight(api, capsys)
    assert code == 1
    assert "BLOCKS IPAddressPool/other/first-pool: is outside metalloid's namespace metallb-system" in out
    assert "BLOCKS IPAddressPool/metallb-system/broken: metalloid rejects it: " in out


def test_preflight_blocks_on_fields_metalloid_keeps_but_does_not_act_on(
    api: FakeApiServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create(yaml.safe_load(RUNBOOK_POOL))
    api.create(yaml.safe_load(RUNBOOK_L2))
    api.create({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                "metadata": {"name": "bgp", "namespace": NS},
                "spec": {"ipAddressPools": ["first-pool"], "serviceSelectors": [{"matchLabels": {"exposed": "yes"}}]}})
    # Acted on since issue 17: nothing blocks.
    code, out = preflight(api, capsys)
    assert code == 0 and "BLOCKS" not in out, out
    # The list is empty today; a field on it (as serviceSelectors was) blocks the switch.
    monkeypatch.setattr(kept_fields, "KEPT_NOT_ACTED_ON", (kept_fields.KeptField(
        kind="BGPAdvertisement", path="spec.serviceSelectors",
        metallb_effect="advertise only the Services matching one of the selectors through this advertisement"),))
    code, out = preflight(api, capsys)
    assert code == 1
    [line] = [x for x in out.splitlines() if x.startswith(f"BLOCKS BGPAdvertisement/{NS}/bgp: ")]
    assert "spec.serviceSelectors" in line and "Fix: remove the field, or keep MetalLB" in line
    assert "would prune" not in out  # metalloid's CRDs keep it


def test_fields_the_crd_schema_does_not_declare_are_reported_as_pruned() -> None:
    schemas = {("IPAddressPool", "v1beta1"): {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"addresses": {"type": "array", "items": {"type": "string"}},
                                                  "serviceAllocation": {"type": "object", "properties": {
                                                      "priority": {"type": "integer"}}}}}}}}  # fmt: skip
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"addresses": ["10.0.0.0/24"], "futureField": 1, "serviceAllocation": {"priority": 1, "x": 2}}}
    community = {"apiVersion": "metallb.io/v1beta1", "kind": "Community", "metadata": {"name": "c", "namespace": NS}}
    found = list(pruned([pool, community], schemas))  # fmt: skip
    assert found == [
        Finding(what=f"IPAddressPool/{NS}/p", problem="metalloid's CRD would prune spec.futureField, "
                "spec.serviceAllocation.x (the field is not in its schema)",
                fix="remove the field, or keep MetalLB until metalloid supports it"),
        Finding(what=f"Community/{NS}/c", problem="metalloid's CRDs do not serve the kind Community",
                fix="keep MetalLB for it, or remove the object"),
    ]  # fmt: skip
    assert list(unknown_fields({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, {"a": 1}, "")) == []
