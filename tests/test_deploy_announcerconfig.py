"""The AnnouncerConfig CRD keeps a plugin's settings as written and checks only metalloid's own fields."""

from __future__ import annotations

from typing import Any

import pytest

from supervisor.config.parsing import parse_objects
from supervisor.kubernetes import kinds
from tests.deploy_support import Obj, admission_errors, find, kustomize


def crd() -> Obj:
    return find(kustomize("."), "CustomResourceDefinition", "announcerconfigs.metalloid.io")


def announcer(spec: dict[str, Any]) -> Obj:
    return {"apiVersion": "metalloid.io/v1alpha1", "kind": "AnnouncerConfig",
            "metadata": {"name": "example", "namespace": "metallb-system"}, "spec": spec}


def test_the_crd_is_what_the_watcher_reads() -> None:
    found = crd()
    kind = kinds.ANNOUNCER_CONFIG
    assert kind in kinds.WATCHED
    assert found["spec"]["group"] == kind.group and found["spec"]["names"]["plural"] == kind.plural
    assert found["spec"]["names"]["kind"] == kind.kind and found["spec"]["scope"] == "Namespaced"
    assert [v["name"] for v in found["spec"]["versions"]] == [kind.version]


def test_free_form_settings_are_accepted_and_parse_like_the_yaml() -> None:
    obj = announcer({"enabled": True, "hangTimeoutSeconds": 10,
                     "settings": {"directory": "/run/x", "nested": {"list": [1, "two", {"three": 3}]}}})
    assert admission_errors(crd(), obj) == []
    config, diagnostics = parse_objects([obj])
    assert diagnostics == []
    parsed = config.announcer("example")
    assert parsed is not None and parsed.settings == obj["spec"]["settings"] and parsed.hang_timeout_seconds == 10


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"enabled": "yes"}, "spec.enabled: 'yes' is not of type 'boolean'"),
    ({"hangTimeoutSeconds": 0.1}, "spec.hangTimeoutSeconds: 0.1 is less than the minimum of 0.5"),
    ({"settings": "directory=/x"}, "spec.settings: 'directory=/x' is not of type 'object'"),
    ({"setings": {}}, "Additional properties are not allowed ('setings' was unexpected)"),
])
def test_metalloids_own_fields_are_checked(spec: dict[str, Any], fragment: str) -> None:
    errors = admission_errors(crd(), announcer(spec))
    assert any(fragment in e for e in errors), errors
