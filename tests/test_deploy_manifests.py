"""deploy/ builds with kustomize, every manifest validates offline against the
Kubernetes schemas, and the security settings are what docs/installing.md
promises: least-privilege RBAC, no root where avoidable, only NET_RAW."""

from __future__ import annotations

import collections
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy_support import Obj, find, kustomize

# The oldest release the CRDs' CEL IP/CIDR functions need, and the newest
# schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]
PROMETHEUS_OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}

BASE_KINDS = {
    "Namespace": 1,
    "CustomResourceDefinition": 10,
    "ServiceAccount": 2,
    "ClusterRole": 2,
    "ClusterRoleBinding": 2,
    "Role": 2,
    "RoleBinding": 2,
    "Deployment": 1,
    "DaemonSet": 1,
}
MONITORING_KINDS = {"Service": 2, "ServiceMonitor": 2, "PrometheusRule": 1}


@pytest.mark.parametrize(
    ("directory", "expected"),
    [(".", BASE_KINDS), ("with-monitoring", {**BASE_KINDS, **MONITORING_KINDS})],
    ids=["deploy", "with-monitoring"],
)
def test_kustomize_builds_the_expected_objects(directory: str, expected: dict[str, int]) -> None:
    objects = kustomize(directory)
    assert dict(collections.Counter(o["kind"] for o in objects)) == expected
    namespaced = [o for o in objects if o["kind"] not in {"Namespace", "CustomResourceDefinition", "ClusterRole",
                                                         "ClusterRoleBinding"}]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"metallb-system"}


def test_the_membership_secret_is_not_shipped() -> None:
    # A key in Git is no key: docs/installing.md has the one command that makes it.
    assert not [o for o in kustomize("with-monitoring") if o["kind"] == "Secret"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    checked = 0
    for obj in kustomize("with-monitoring"):
        if obj["kind"] in PROMETHEUS_OPERATOR_KINDS:
            continue  # no schema offline; test_deploy_monitoring checks their shape
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked == sum(BASE_KINDS.values()) + 2


def test_strict_validation_would_catch_a_typo() -> None:
    # Guards the test above: the validator really is strict.
    deployment = dict(find(kustomize("."), "Deployment", "controller"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def pod_spec(kind: str, name: str) -> Obj:
    spec: Obj = find(kustomize("."), kind, name)["spec"]["template"]["spec"]
    return spec


def container(kind: str, name: str) -> Obj:
    containers = pod_spec(kind, name)["containers"]
    assert len(containers) == 1
    c: Obj = containers[0]
    return c


def resolved_args(c: Obj, env: dict[str, str]) -> list[str]:
    """The argv the kubelet runs: $(VAR) expanded from the container's env."""
    args: list[str] = c["args"]
    out = []
    for arg in args:
        for name, value in env.items():
            arg = arg.replace(f"$({name})", value)
        out.append(arg)
    return out


def field_refs(c: Obj) -> dict[str, str]:
    return {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c.get("env", []) if "valueFrom" in e}


def test_controller_runs_the_documented_command() -> None:
    c = container("Deployment", "controller")
    # HTTP binds the pod's own address (kubelet probes and Prometheus go there).
    assert field_refs(c) == {"METALLOID_NAMESPACE": "metadata.namespace", "METALLOID_METRICS_HOST": "status.podIP"}
    argv = resolved_args(c, {"METALLOID_NAMESPACE": "metallb-system"})
    assert argv == ["controller", "--namespace", "metallb-system", "--metrics-port", "7472", "--log-format", "json"]


def test_speaker_runs_the_documented_command() -> None:
    c = container("DaemonSet", "speaker")
    # hostNetwork: HTTP binds the node's own address, not every host interface.
    assert field_refs(c) == {"NODE_NAME": "spec.nodeName", "METALLOID_NAMESPACE": "metadata.namespace",
                             "METALLOID_METRICS_HOST": "status.hostIP", "POD_NAME": "metadata.name"}
    argv = resolved_args(c, {"NODE_NAME": "n1", "METALLOID_NAMESPACE": "metallb-system"})
    assert argv == ["speaker", "--node", "n1", "--namespace", "metallb-system",
                    "--membership-key-file", "/etc/metalloid/memberlist/secretkey",
                    "--metrics-port", "7472", "--log-format", "json"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    key_mount = mounts["/etc/metalloid/memberlist"]
    assert key_mount["readOnly"] is True
    volume = next(v for v in pod_spec("DaemonSet", "speaker")["volumes"] if v["name"] == key_mount["name"])
    assert volume["secret"]["secretName"] == "metalloid-memberlist"
    assert volume["secret"]["defaultMode"] == 0o400
    assert volume["secret"]["items"] == [{"key": "secretkey", "path": "secretkey"}]


def test_speaker_pods_carry_the_peer_selector_labels() -> None:
    ds = find(kustomize("."), "DaemonSet", "speaker")
    assert ds["spec"]["template"]["metadata"]["labels"] == {"app": "metalloid", "component": "speaker"}


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "controller"), ("DaemonSet", "speaker")])
def test_probes_use_the_honest_health_endpoints(kind: str, name: str) -> None:
    c = container(kind, name)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["monitoring"] == 7472
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "monitoring"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "monitoring"}


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "controller"), ("DaemonSet", "speaker")])
def test_containers_are_locked_down(kind: str, name: str) -> None:
    spec = pod_spec(kind, name)
    sc = container(kind, name)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "privileged" not in sc or sc["privileged"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "resources" in container(kind, name) and "memory" in container(kind, name)["resources"]["limits"]
    # Nothing else from the host.
    assert not spec.get("hostPID") and not spec.get("hostIPC")
    assert all("hostPath" not in v for v in spec.get("volumes", []))


def test_controller_is_an_unprivileged_non_root_pod() -> None:
    spec = pod_spec("Deployment", "controller")
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert "add" not in container("Deployment", "controller")["securityContext"]["capabilities"]
    assert not spec.get("hostNetwork")


def test_speaker_has_host_network_and_only_net_raw() -> None:
    spec = pod_spec("DaemonSet", "speaker")
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    # uid 0 is a documented decision (speaker.yaml): NET_RAW cannot be held by
    # a non-root user in a pod without allowPrivilegeEscalation.
    assert spec["securityContext"]["runAsUser"] == 0
    assert container("DaemonSet", "speaker")["securityContext"]["capabilities"]["add"] == ["NET_RAW"]
    ports = {(p["containerPort"], p["protocol"]) for p in container("DaemonSet", "speaker")["ports"]}
    assert ports == {(7472, "TCP"), (7946, "UDP")}


def test_speaker_hands_over_fast() -> None:
    ds = find(kustomize("."), "DaemonSet", "speaker")
    assert ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] <= 5
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1


def rules_of(kind: str, name: str) -> list[Obj]:
    rules: list[Obj] = find(kustomize("."), kind, name)["rules"]
    return rules


def grants(*roles: tuple[str, str]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples the roles grant."""
    out = set()
    for kind, name in roles:
        for rule in rules_of(kind, name):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        out.add((group, resource, verb))
    return out


def expand(spec: dict[tuple[str, str], list[str]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for (g, r), verbs in spec.items() for v in verbs}


READ = ["get", "list", "watch"]
CONFIG = ["ipaddresspools", "l2advertisements", "bgppeers", "bgpadvertisements", "bfdprofiles", "communities"]

CONTROLLER_CLUSTER = expand({
    ("", "services"): READ,
    ("", "services/status"): ["update", "patch"],
    ("", "events"): ["get", "create", "patch"],
    ("discovery.k8s.io", "endpointslices"): ["list", "watch"],
    ("", "nodes"): ["list", "watch"],
    ("", "namespaces"): ["list", "watch"],
})
CONTROLLER_NAMESPACE = expand({
    **{("metallb.io", r): READ for r in CONFIG},
    ("metallb.io", "ipaddresspools/status"): ["update", "patch"],
    ("metalloid.io", "announcerconfigs"): READ,
    ("coordination.k8s.io", "leases"): ["get", "create", "update"],
    ("metallb.io", "configurationstates"): ["get", "create"],
    ("metallb.io", "configurationstates/status"): ["patch"],
})
SPEAKER_CLUSTER = expand({
    ("", "services"): READ,
    ("", "nodes"): READ,
    ("", "namespaces"): READ,
    ("discovery.k8s.io", "endpointslices"): READ,
    ("", "events"): ["get", "create", "patch"],
})
SPEAKER_NAMESPACE = expand({
    ("", "pods"): READ,
    **{("metallb.io", r): READ for r in CONFIG},
    ("metalloid.io", "announcerconfigs"): READ,
    ("metallb.io", "servicel2statuses"): ["get", "list", "create", "delete"],
    ("metallb.io", "servicel2statuses/status"): ["patch"],
    ("metallb.io", "servicebgpstatuses"): ["get", "list", "create", "delete"],
    ("metallb.io", "servicebgpstatuses/status"): ["patch"],
    ("metallb.io", "configurationstates"): ["get", "create"],
    ("metallb.io", "configurationstates/status"): ["patch"],
})


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("ClusterRole", "metalloid:controller", CONTROLLER_CLUSTER),
        ("Role", "metalloid:controller", CONTROLLER_NAMESPACE),
        ("ClusterRole", "metalloid:speaker", SPEAKER_CLUSTER),
        ("Role", "metalloid:speaker", SPEAKER_NAMESPACE),
    ],
    ids=["controller-cluster", "controller-namespace", "speaker-cluster", "speaker-namespace"],
)
def test_rbac_grants_exactly_what_each_component_needs(kind: str, name: str, expected: set[Any]) -> None:
    assert grants((kind, name)) == expected


def test_rbac_has_no_wildcards_and_no_secrets() -> None:
    for obj in kustomize("."):
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in obj["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (obj["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"], (obj["metadata"]["name"], rule)
            assert not ({"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]))
            # The only deletes: a speaker's own ServiceL2Status and ServiceBGPStatus objects (as MetalLB's speaker).
            if "delete" in rule["verbs"]:
                assert (obj["kind"], obj["metadata"]["name"], rule["resources"]) == (
                    "Role", "metalloid:speaker", ["servicel2statuses", "servicebgpstatuses"])
            assert "nonResourceURLs" not in rule


@pytest.mark.parametrize(
    ("binding_kind", "role_kind", "name", "account"),
    [
        ("ClusterRoleBinding", "ClusterRole", "metalloid:controller", "controller"),
        ("RoleBinding", "Role", "metalloid:controller", "controller"),
        ("ClusterRoleBinding", "ClusterRole", "metalloid:speaker", "speaker"),
        ("RoleBinding", "Role", "metalloid:speaker", "speaker"),
    ],
)
def test_each_role_is_bound_to_its_own_service_account(binding_kind: str, role_kind: str, name: str,
                                                        account: str) -> None:
    binding = find(kustomize("."), binding_kind, name)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "metallb-system"}]
    workload = "Deployment" if account == "controller" else "DaemonSet"
    assert pod_spec(workload, account)["serviceAccountName"] == account


def test_namespace_allows_the_speaker_but_warns_on_anything_else() -> None:
    labels = find(kustomize("."), "Namespace", "metallb-system")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_kernel_arp_adds_only_bpf_and_net_admin_to_the_speaker() -> None:
    def speaker(directory: str) -> dict[str, Any]:
        ds = next(o for o in kustomize(directory) if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "speaker")
        container: dict[str, Any] = ds["spec"]["template"]["spec"]["containers"][0]
        assert container["name"] == "speaker"
        return container

    base, kernel = speaker("."), speaker("with-kernel-arp")
    assert base["securityContext"]["capabilities"] == {"add": ["NET_RAW"], "drop": ["ALL"]}
    assert kernel["securityContext"]["capabilities"] == {"add": ["NET_RAW", "NET_ADMIN", "BPF"], "drop": ["ALL"]}
    # Nothing else of the speaker, or of any other object, differs.
    kernel["securityContext"]["capabilities"] = base["securityContext"]["capabilities"]
    assert kernel == base
    others = [o for o in kustomize("with-kernel-arp") if o["kind"] != "DaemonSet"]
    assert others == [o for o in kustomize(".") if o["kind"] != "DaemonSet"]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(next(o for o in kustomize("with-kernel-arp") if o["kind"] == "DaemonSet"),
                                     version, strict=True)  # fmt: skip
