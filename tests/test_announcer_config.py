"""The AnnouncerConfig kind: a plugin's settings in the config, with FILE:LINE for every field."""

from __future__ import annotations

import pytest

from supervisor.api import setting_error, setting_source, setting_warning
from supervisor.config.loading import load_text
from supervisor.config.model import Config
from supervisor.config.parsing import parse_documents, parse_objects
from supervisor.config.validation import validate

DOC = """\
apiVersion: metalloid.io/v1alpha1
kind: AnnouncerConfig
metadata:
  name: webhook
spec:
  hangTimeoutSeconds: 12
  settings:
    url: https://hooks.example/announce
    headers:
      X-Token: abc
    targets:
      - name: a
        weight: 2
      - name: b
"""


def parse(text: str) -> tuple[Config, list[str]]:
    documents, diagnostics = load_text(text, file="node.yaml")
    config, problems = parse_documents(documents)
    return config, [str(d) for d in [*diagnostics, *problems, *validate(config)]]


def test_settings_are_kept_as_written_with_the_plain_fields_parsed() -> None:
    config, problems = parse(DOC)
    assert problems == []
    webhook = config.announcer("webhook")
    assert webhook is not None
    assert webhook.enabled is True and webhook.hang_timeout_seconds == 12.0
    assert webhook.settings == {"url": "https://hooks.example/announce", "headers": {"X-Token": "abc"},
                                "targets": [{"name": "a", "weight": 2}, {"name": "b"}]}
    # A fresh copy each time: a plugin cannot change the frozen config through it.
    webhook.settings["url"] = "changed"
    assert webhook.settings["url"] == "https://hooks.example/announce"
    assert config.announcer("other") is None


@pytest.mark.parametrize(("path", "line"), [
    ("url", 8), ("headers.X-Token", 10), ("targets[1].name", 14), ("targets[0].weight", 13), ("", 7),
    ("not-written", 7),
])
def test_every_settings_field_has_its_line(path: str, line: int) -> None:
    config, _ = parse(DOC)
    webhook = config.announcer("webhook")
    assert webhook is not None
    assert setting_source(webhook, path).line == line


def test_a_plugin_says_file_line_kind_name_field() -> None:
    config, _ = parse(DOC)
    webhook = config.announcer("webhook")
    assert webhook is not None
    assert str(setting_error(webhook, "targets[1].name", "'b' names no target; use a or c")) == (
        "node.yaml:14: AnnouncerConfig/webhook: spec.settings.targets[1].name: 'b' names no target; use a or c")
    assert str(setting_warning(webhook, "url", "plain http")) == (
        "node.yaml:8: AnnouncerConfig/webhook: warning: spec.settings.url: plain http")
    assert setting_error(webhook, "url", "x").is_error and not setting_warning(webhook, "url", "x").is_error


def test_enabled_false_and_no_settings() -> None:
    config, problems = parse("apiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {name: layer2}\n"
                             "spec: {enabled: false}\n")
    assert problems == []
    layer2 = config.announcer("layer2")
    assert layer2 is not None and layer2.enabled is False and layer2.settings == {}


@pytest.mark.parametrize(("spec", "message"), [
    ("{settings: [1, 2]}", "node.yaml:4: AnnouncerConfig/x: spec.settings: expected a mapping"),
    ("{enabled: yes}", "node.yaml:4: AnnouncerConfig/x: spec.enabled: expected true or false"),
    ("{hangTimeoutSeconds: 0.1}", "node.yaml:4: AnnouncerConfig/x: spec.hangTimeoutSeconds: 0.1 is out of range"),
    ("{setings: {}}", "node.yaml:4: AnnouncerConfig/x: warning: unknown field spec.setings is ignored; did you mean "
                      "settings?"),
])
def test_bad_fields_are_named(spec: str, message: str) -> None:
    _, problems = parse(f"apiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {{name: x}}\n"
                        f"spec: {spec}\n")
    assert any(p.startswith(message) for p in problems), problems


def test_two_objects_for_one_protocol_are_an_error() -> None:
    _, problems = parse(DOC + "---\n" + DOC)
    assert problems == ["node.yaml:16: AnnouncerConfig/webhook: a second AnnouncerConfig for protocol 'webhook' "
                        "(the first is at node.yaml:1); one object per announcer, merge them"]


def test_the_kubernetes_shape_parses_the_same() -> None:
    config, problems = parse_objects([{
        "apiVersion": "metalloid.io/v1alpha1", "kind": "AnnouncerConfig",
        "metadata": {"name": "webhook", "namespace": "metallb-system"},
        "spec": {"settings": {"url": "https://x"}},
    }])
    assert problems == []
    webhook = config.announcer("webhook")
    assert webhook is not None and webhook.settings == {"url": "https://x"}
    assert str(setting_error(webhook, "url", "bad")) == "<api>:0: AnnouncerConfig/webhook: spec.settings.url: bad"


def test_configs_that_differ_only_in_lines_are_equal() -> None:
    first, _ = parse(DOC)
    second, _ = parse("\n\n" + DOC)
    assert first.announcers[0].settings_json == second.announcers[0].settings_json
