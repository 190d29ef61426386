"""Which announcers run, and why: installing a plugin starts nothing by itself."""

from __future__ import annotations

import pytest

from supervisor.announcing.enabling import Decision, decide, enabled, parse_list
from supervisor.config.loading import load_text
from supervisor.config.model import Config
from supervisor.config.parsing import parse_documents
from supervisor.supervising.following import Step, step
from supervisor.supervising.lifecycle import State

L2 = "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n---\n"
PEER = ("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\n"
        "spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}\n---\n")


def announcer(name: str, enabled: bool = True) -> str:
    return (f"apiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {{name: {name}}}\n"
            f"spec: {{enabled: {'true' if enabled else 'false'}}}\n---\n")


def config(text: str) -> Config:
    documents, _ = load_text(text, file="c.yaml")
    return parse_documents(documents)[0]


@pytest.mark.parametrize(("text", "requested", "expected"), [
    pytest.param("", None, [], id="nothing-configured-nothing-runs"),
    pytest.param(L2, None, [("layer2", True, "default: the config has L2Advertisements")], id="metallb-l2-default"),
    pytest.param(PEER, None, [("bgp", True, "default: the config has BGPPeers")], id="metallb-bgp-default"),
    pytest.param(L2 + announcer("example"), None,
                 [("example", True, "enabled by AnnouncerConfig/example at c.yaml:5"),
                  ("layer2", True, "default: the config has L2Advertisements")], id="plugin-by-config"),
    pytest.param(L2 + announcer("layer2", enabled=False), None,
                 [("layer2", False, "disabled by AnnouncerConfig/layer2 at c.yaml:5 (spec.enabled: false)")],
                 id="default-turned-off"),
    pytest.param(L2 + announcer("example"), ("example",),
                 [("example", True, "enabled by --announcers")], id="flag-is-the-whole-list"),
    pytest.param(announcer("webhook"), ("layer2",),
                 [("layer2", True, "enabled by --announcers"),
                  ("webhook", False, "not in --announcers (which overrides AnnouncerConfig/webhook)")],
                 id="flag-overrides-config"),
])
def test_the_rule(text: str, requested: tuple[str, ...] | None, expected: list[tuple[str, bool, str]]) -> None:
    decisions = decide(config(text), requested)
    assert [(d.protocol, d.enabled, d.reason) for d in decisions] == expected
    assert enabled(decisions) == [p for p, on, _ in expected if on]


def test_no_config_yet_runs_only_the_flag() -> None:
    assert decide(None, None) == ()
    assert decide(None, ("layer2",)) == (Decision(protocol="layer2", enabled=True, reason="enabled by --announcers"),)


@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("", None), (" , ", None), ("layer2, example,layer2", ("layer2", "example")),
])
def test_parse_list(text: str | None, expected: tuple[str, ...] | None) -> None:
    assert parse_list(text) == expected


@pytest.mark.parametrize(("enabled", "state", "alive", "changed", "expected"), [
    pytest.param(True, None, False, False, Step.START, id="enabled-first-time"),
    pytest.param(True, State.FATAL, False, True, Step.REVIVE, id="failed-then-config-changed"),
    pytest.param(True, State.FATAL, False, False, Step.KEEP, id="failed-stays-failed"),
    pytest.param(True, State.EXITED, False, False, Step.START, id="re-enabled"),
    pytest.param(True, State.STOPPING, True, False, Step.RESTART, id="enabled-again-while-stopping"),
    pytest.param(True, State.RUNNING, True, True, Step.RESTART, id="settings-changed"),
    pytest.param(True, State.STARTING, True, True, Step.RESTART, id="settings-changed-while-starting"),
    pytest.param(True, State.RUNNING, True, False, Step.KEEP, id="unchanged"),
    pytest.param(True, State.BACKOFF, False, True, Step.KEEP, id="backoff-respawns-with-new-spec"),
    pytest.param(False, State.RUNNING, True, False, Step.STOP, id="disabled"),
    pytest.param(False, State.BACKOFF, False, False, Step.STOP, id="disabled-in-backoff"),
    pytest.param(False, State.FATAL, False, False, Step.CLEAR, id="disabled-while-failed"),
    pytest.param(False, State.EXITED, False, False, Step.KEEP, id="already-stopped"),
    pytest.param(False, None, False, False, Step.KEEP, id="never-ran"),
])
def test_what_a_new_config_does_to_an_announcer(enabled: bool, state: State | None, alive: bool, changed: bool,
                                                 expected: Step) -> None:
    assert step(enabled=enabled, state=state, alive=alive, changed=changed) is expected
