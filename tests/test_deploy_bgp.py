"""deploy/with-bgp (deploy/ plus the deploy/frr component): an frr container beside every speaker, offline."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from plugins.bgp.frr import settings_from
from supervisor.config.parsing import parse_objects
from tests.deploy_support import find, kustomize
from tests.fakeapi import FakeApiServer

VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_builtin_object_validates_strictly(version: str) -> None:
    checked = 0
    for obj in kustomize("with-bgp"):
        if obj["kind"] == "AnnouncerConfig":
            continue  # metalloid's own kind: parsed below
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    # deploy/'s objects plus the frr-startup ConfigMap and the Secret-reading Role and RoleBinding.
    assert checked == len(kustomize(".")) + 3


def _pod() -> dict[str, Any]:
    return dict(find(kustomize("with-bgp"), "DaemonSet", "speaker")["spec"]["template"]["spec"])


def test_frr_runs_beside_the_speaker_sharing_the_socket_directory() -> None:
    pod = _pod()
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"speaker", "frr"}
    mounts = {name: {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])} for name, c in containers.items()}
    assert mounts["speaker"]["frr-sockets"] == mounts["frr"]["frr-sockets"] == "/var/run/frr"
    assert {"name": "frr-sockets", "emptyDir": {}} in pod["volumes"]
    # Its own readiness: vtysh answers.
    assert "vtysh" in containers["frr"]["readinessProbe"]["exec"]["command"][0]
    # The speaker can open the vty sockets (group frrvty, fixed in deploy/Dockerfile).
    assert 1102 in pod["securityContext"]["supplementalGroups"]


def test_the_speaker_keeps_its_own_lockdown() -> None:
    speaker = next(c for c in _pod()["containers"] if c["name"] == "speaker")
    assert speaker["securityContext"]["capabilities"]["add"] == ["NET_RAW"]


def test_the_announcer_config_points_the_plugin_at_the_frr_container() -> None:
    obj = find(kustomize("with-bgp"), "AnnouncerConfig", "bgp")
    config, diagnostics = parse_objects([obj])
    assert not [d for d in diagnostics if d.is_error]
    settings = settings_from(config.announcers[0].settings, node="n1", mode="kubernetes")
    assert settings.manage_daemons is False
    assert str(settings.run_dir) == "/var/run/frr"


def test_only_with_bgp_the_speaker_may_get_secrets_and_only_in_its_namespace() -> None:
    from tests.test_deploy_manifests import grants

    objects = kustomize("with-bgp")
    role = find(objects, "Role", "metalloid:speaker-bgp-secrets")
    assert role["metadata"]["namespace"] == "metallb-system"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    binding = find(objects, "RoleBinding", "metalloid:speaker-bgp-secrets")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "metalloid:speaker-bgp-secrets"}  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "speaker", "namespace": "metallb-system"}]
    # Nothing else anywhere grants Secrets (deploy/ alone grants none: test_deploy_manifests).
    others = [o for o in objects if o["kind"] in ("Role", "ClusterRole") and o is not role
              and any("secrets" in r.get("resources", []) for r in o["rules"])]  # fmt: skip
    assert others == []
    assert ("", "secrets", "get") not in grants(("Role", "metalloid:speaker"), ("ClusterRole", "metalloid:speaker"))


def test_what_the_secret_reader_calls_is_exactly_what_the_role_grants(api: FakeApiServer) -> None:
    """The passwordSecret reader against the fake API, through the host's `read_secret` (its stdlib
    client, as in a speaker's announcer process): its requests, as (group, resource, verb, namespace),
    are all inside the Role, and it reads what MetalLB reads (the `password` key)."""
    import base64
    import queue

    from plugins.bgp.secrets import SecretError, kubernetes_reader
    from supervisor.announcing.host import QueueHost
    from supervisor.kubernetes.secrets import SecretReader
    from supervisor.roles import Mode
    from tests.runtime_helpers import wait_for

    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tor-a", "namespace": "metallb-system"},
                "type": "kubernetes.io/basic-auth", "data": {"password": base64.b64encode(b"s3cret").decode()}})
    host = QueueHost(node_name="n1", protocol="bgp", outbox=queue.Queue(), mode=Mode.KUBERNETES,
                     secrets=SecretReader(api_host=api.url).read)
    read = kubernetes_reader(host)
    before = len(api.requests)
    assert read("metallb-system", "tor-a") == "s3cret"
    with pytest.raises(SecretError, match="Secret metallb-system/absent does not exist: create it"):
        read("metallb-system", "absent")
    # The fake records a request after it has answered it: wait for the second record.
    wait_for(lambda: len(api.requests) >= before + 2, timeout=5, what="both requests recorded")
    calls = {(r.method, r.path) for r in api.requests[before:]}
    assert calls == {("GET", "/api/v1/namespaces/metallb-system/secrets/tor-a"),
                     ("GET", "/api/v1/namespaces/metallb-system/secrets/absent")}  # fmt: skip
    role = find(kustomize("with-bgp"), "Role", "metalloid:speaker-bgp-secrets")
    granted = {("", resource, verb, role["metadata"]["namespace"]) for rule in role["rules"]
               for resource in rule["resources"] for verb in rule["verbs"]}  # fmt: skip
    verbs = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}
    used = {("", path.split("/")[5], verbs[method], path.split("/")[4]) for method, path in calls}
    assert used <= granted, used - granted
