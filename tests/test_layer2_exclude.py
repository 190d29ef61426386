"""The layer 2 interface exclude list: MetalLB's `metallb-excludel2` ConfigMap, its default, and overrides.

MetalLB's speaker reads `announcedInterfacesToExclude` from the ConfigMap it
mounts at /etc/metallb/excludel2.yaml; its manifests ship the list checked in
`test_metallb_manifest_list_is_the_default`. metalloid reads the same file,
and lets the environment (one host) or a standalone config's Settings
override it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plugins.layer2 import announcer as announcer_module
from plugins.layer2.interfaces import (
    DEFAULT_EXCLUDE,
    ExcludeListError,
    exclude_from_env,
    exclude_from_file,
    exclude_from_text,
    exclude_list,
    unsuitable,
)
from supervisor.config.diagnostics import Severity
from supervisor.config.loading import load_text
from supervisor.config.model import Config, Settings
from supervisor.config.parsing import parse_documents
from tests.test_layer2_announcer import ETH0, ETH1, VETH, FakeBinder, FakeResponder, RecordingHost, view

# config/manifests/metallb-native.yaml (MetalLB, the ConfigMap metallb-excludel2, key excludel2.yaml).
METALLB_NATIVE = (
    'announcedInterfacesToExclude: ["^docker.*", "^cbr.*", "^dummy.*", "^virbr.*", "^lxcbr.*", "^veth.*", '
    '"^lo$", "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*", "^nodelocaldns.*", "^lxc.*"]\n'
)


def test_metallb_manifest_list_is_the_default() -> None:
    assert exclude_from_text(METALLB_NATIVE, "excludel2.yaml") == DEFAULT_EXCLUDE


@pytest.mark.parametrize(
    ("name", "excluded"),
    [
        ("eth0", False), ("ens18", False), ("bond0", False), ("br0", False), ("vlan10", False),
        ("lxc8d3e2a1b", True),  # Cilium's per-pod veth ends: MetalLB excludes them, metalloid did not
        ("lxcbr0", True), ("docker0", True), ("cni0", True), ("cali12ab", True), ("flannel.1", True),
        ("veth1234", True), ("kube-ipvs0", True), ("nodelocaldns", True), ("tunl0", True), ("virbr0", True),
    ],
)  # fmt: skip
def test_default_list(name: str, excluded: bool) -> None:
    link = ETH0.__class__(name=name, index=9, mac=ETH0.mac, flags=ETH0.flags)
    reason = unsuitable(link, exclude=DEFAULT_EXCLUDE)
    assert (reason is not None) is excluded, reason
    assert unsuitable(link, exclude=DEFAULT_EXCLUDE, explicit=True) is None  # named by an advertisement


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("announcedInterfacesToExclude: [\"^eth(\"]\n", "announcedInterfacesToExclude[0]: '^eth(' is not a valid"),
        ("announcedInterfacesToExclude: ^eth0$\n", "must be a list of regular expressions"),
        ("- ^eth0$\n", "expected a mapping with announcedInterfacesToExclude"),
        ("announcedInterfacesToExclude: [\n", "not valid YAML"),
    ],
)
def test_a_bad_configmap_names_the_file_the_key_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ExcludeListError) as caught:
        exclude_from_text(text, "/etc/metallb/excludel2.yaml")
    assert str(caught.value).startswith("/etc/metallb/excludel2.yaml: ")
    assert message in str(caught.value)
    assert "fix the ConfigMap metallb-excludel2 (key excludel2.yaml)" in str(caught.value)


def test_an_empty_configmap_excludes_nothing_as_in_metallb() -> None:
    assert exclude_from_text("", "f") == ()
    assert exclude_from_text("announcedInterfacesToExclude: []\n", "f") == ()


def test_the_mounted_file(tmp_path: Path) -> None:
    assert exclude_from_file(str(tmp_path / "absent.yaml")) is None
    path = tmp_path / "excludel2.yaml"
    path.write_text("announcedInterfacesToExclude:\n- ^eth1$\n")
    assert exclude_from_file(str(path)) == ("^eth1$",)


@pytest.mark.parametrize(
    ("env", "settings", "mounted", "expected"),
    [
        pytest.param(None, None, None, DEFAULT_EXCLUDE, id="nothing-set-metallb-default"),
        pytest.param(None, None, ("^a$",), ("^a$",), id="configmap"),
        pytest.param(None, ("^s$",), ("^a$",), ("^s$",), id="settings-over-configmap"),
        pytest.param(("^e$",), ("^s$",), ("^a$",), ("^e$",), id="environment-over-all"),
        pytest.param((), None, None, (), id="empty-environment-excludes-nothing"),
    ],
)
def test_which_list_applies(
    env: tuple[str, ...] | None, settings: tuple[str, ...] | None, mounted: tuple[str, ...] | None,
    expected: tuple[str, ...],
) -> None:
    assert exclude_list(env=env, settings=settings, mounted=mounted) == expected


def test_environment_override() -> None:
    assert exclude_from_env({}) is None
    assert exclude_from_env({"METALLOID_LAYER2_EXCLUDE": ""}) == ()
    assert exclude_from_env({"METALLOID_LAYER2_EXCLUDE": "^a.*, ^b$"}) == ("^a.*", "^b$")


def test_settings_parse_and_reject_a_bad_pattern() -> None:
    def settings(patterns: str) -> tuple[Config, list[str]]:
        docs, problems = load_text(textwrap.dedent(f"""\
            apiVersion: metalloid.io/v1alpha1
            kind: Settings
            metadata: {{name: settings}}
            spec:
              announcedInterfacesToExclude: {patterns}
            """), file="s.yaml")
        config, more = parse_documents(docs)
        return config, [str(d) for d in problems + more if d.severity is Severity.ERROR]

    config, errors = settings('["^eth1$", "^wg.*"]')
    assert errors == [] and config.settings.interfaces_to_exclude == ("^eth1$", "^wg.*")
    config, errors = settings("[]")
    assert errors == [] and config.settings.interfaces_to_exclude == ()
    _, errors = settings('["^eth1$", "(("]')
    assert errors == [
        "s.yaml:5: Settings/settings: spec.announcedInterfacesToExclude[1]: '((' is not a valid regular expression "
        "(missing ), unterminated subpattern at position 1); fix or remove it"
    ]
    assert Settings().interfaces_to_exclude is None


def test_the_announcer_follows_the_configs_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALLOID_LAYER2_EXCLUDE", raising=False)
    monkeypatch.setattr(announcer_module, "exclude_from_file", lambda: None)  # no ConfigMap mounted here
    responder = FakeResponder()
    a = announcer_module.Layer2Announcer(
        RecordingHost(node_name="n1"), responder=responder, binder=FakeBinder(),  # type: ignore[arg-type]
        watch_links=False, list_links=lambda: (ETH0, ETH1, VETH),
    )  # fmt: skip
    a.start()
    assert sorted(responder.ports) == ["eth0", "eth1"]  # MetalLB's default drops veth9
    a.update(view("n1", Config(settings=Settings(interfaces_to_exclude=("^eth1$",)))))
    assert sorted(responder.ports) == ["eth0", "veth9"]
    a.update(view("n1", Config()))
    assert sorted(responder.ports) == ["eth0", "eth1"]
