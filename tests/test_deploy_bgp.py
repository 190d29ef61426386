"""deploy/with-bgp (deploy/ plus the deploy/frr component): an frr container beside every speaker, offline."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from plugins.bgp.frr import settings_from
from supervisor.config.parsing import parse_objects
from tests.deploy_support import find, kustomize

VERSIONS = ["1.31.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_builtin_object_validates_strictly(version: str) -> None:
    checked = 0
    for obj in kustomize("with-bgp"):
        if obj["kind"] == "AnnouncerConfig":
            continue  # metalloid's own kind: parsed below
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    # deploy/'s objects plus the frr-startup ConfigMap.
    assert checked == len(kustomize(".")) + 1


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
