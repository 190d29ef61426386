"""Loading plugins: unknown hooks and API versions are load errors; every path runs the validators.

`metalloid check` and `plan` exit 1 on a plugin that fails to load (naming the
plugin and the hook) and on an AnnouncerConfig no plugin registers; the file
watcher and the Kubernetes watcher run the same validators on every load.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pluggy
import pytest

from supervisor import cli
from supervisor.api import (
    METALLOID_PLUGIN_API,
    AnnouncerRegistry,
    Config,
    Diagnostic,
    error,
    hookimpl,
    setting_error,
)
from supervisor.config.model import API_SOURCE
from supervisor.hookspecs import ENTRY_POINT_GROUP
from supervisor.kubernetes.watcher import build_config
from supervisor.plugin_testing import load_plugin, registered_announcers
from supervisor.plugins_loader import PluginLoadFailure, PluginRejected, build_plugin_manager
from tests.recording_plugin import RecordingAnnouncer

POOL = ("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
        "spec: {addresses: [10.0.0.0/24]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n"
        "metadata: {name: l2}\n")
SETTINGS = ("---\napiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {name: recording}\n"
            "spec:\n  settings:\n    mode: loud\n")


def module(name: str, **attributes: Any) -> ModuleType:
    found = ModuleType(name)
    for key, value in attributes.items():
        setattr(found, key, value)
    return found


@hookimpl
def _register(registry: AnnouncerRegistry) -> None:
    registry.add(RecordingAnnouncer)


@hookimpl
def _validate(config: Config) -> list[Diagnostic]:
    recording = config.announcer("recording")
    if recording is not None and recording.settings.get("mode") != "quiet":
        return [setting_error(recording, "mode", f"{recording.settings.get('mode')!r} is not quiet; write quiet")]
    return []


GOOD = module("good", metalloid_register_announcers=_register, metalloid_validate_config=_validate)


def install(monkeypatch: pytest.MonkeyPatch, plugins: dict[str, Any]) -> None:
    def entry_points(*, group: str) -> list[Any]:
        assert group == ENTRY_POINT_GROUP
        return [SimpleNamespace(name=n, value=f"fake:{n}", load=(lambda p=p: p)) for n, p in plugins.items()]
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def failures_of(monkeypatch: pytest.MonkeyPatch, plugin: Any) -> list[PluginLoadFailure]:
    install(monkeypatch, {"broken": plugin})
    failures: list[PluginLoadFailure] = []
    pm = build_plugin_manager(failures=failures)
    assert pm.get_plugin("broken") is None
    return failures


def test_a_hook_without_hookimpl_is_a_load_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def metalloid_validate_config(config: Config) -> list[Diagnostic]:
        return []

    [failure] = failures_of(monkeypatch, module("p", metalloid_register_announcers=_register,
                                                metalloid_validate_config=metalloid_validate_config))
    assert failure.hook == "metalloid_validate_config"
    assert "not marked @hookimpl" in failure.reason


def test_a_misspelled_undecorated_hook_gets_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    def metalloid_validate_confg(config: Config) -> list[Diagnostic]:
        return []

    [failure] = failures_of(monkeypatch, module("p", metalloid_validate_confg=metalloid_validate_confg))
    assert failure.hook == "metalloid_validate_confg"
    assert failure.reason == "unknown hook metalloid_validate_confg; did you mean metalloid_validate_config?"


def test_a_misspelled_hookimpl_is_named_too(monkeypatch: pytest.MonkeyPatch) -> None:
    [failure] = failures_of(monkeypatch, module("p", metalloid_register_announcer=_register))
    assert failure.hook == "metalloid_register_announcer"


PROVIDED = ".".join(map(str, METALLOID_PLUGIN_API))


@pytest.mark.parametrize(("required", "message"), [
    ((2, 0), f"needs plugin API 2.0, this metalloid provides {PROVIDED}; upgrade metalloid"),
    ((1, 7), f"needs plugin API 1.7, this metalloid provides {PROVIDED}; upgrade metalloid"),
    ((0, 9), f"needs plugin API 0.9, this metalloid provides {PROVIDED}; use a release of the plugin made for this "
             "API"),
    ("1.0", "METALLOID_PLUGIN_API_REQUIRED = '1.0' is not a (major, minor) tuple of ints"),
])
def test_an_incompatible_plugin_api_is_a_clear_load_error(monkeypatch: pytest.MonkeyPatch, required: Any,
                                                          message: str) -> None:
    [failure] = failures_of(monkeypatch, module("p", metalloid_register_announcers=_register,
                                                METALLOID_PLUGIN_API_REQUIRED=required))
    assert failure.reason == message and failure.hook is None


def test_a_compatible_plugin_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, {"good": module("g", metalloid_register_announcers=_register,
                                         METALLOID_PLUGIN_API_REQUIRED=(1, 0))})
    failures: list[PluginLoadFailure] = []
    assert build_plugin_manager(failures=failures).get_plugin("good") is not None and failures == []


def test_the_testing_kit_loads_with_the_same_checks() -> None:
    with pytest.raises(PluginRejected, match="unknown hook 'metalloid_register_announcer'"):
        load_plugin(module("p", metalloid_register_announcer=_register))
    assert isinstance(load_plugin(GOOD), pluggy.PluginManager)
    assert list(registered_announcers(GOOD)) == ["recording"]


def test_check_fails_on_a_plugin_that_cannot_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(POOL)
    install(monkeypatch, {"typo": module("t", metalloid_register_announcer=_register)})
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "<plugins>:0: Plugin/typo: plugin 'typo' (fake:typo) could not be loaded" in out
    assert "(hook metalloid_register_announcer)" in out


def test_check_and_plan_run_the_plugins_settings_validation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(POOL + SETTINGS)
    install(monkeypatch, {"good": GOOD})
    wanted = f"{path}:15: AnnouncerConfig/recording: spec.settings.mode: 'loud' is not quiet; write quiet"
    assert cli.main(["check", str(path)]) == 1
    assert wanted in capsys.readouterr().out
    assert cli.main(["plan", str(path)]) == 1
    assert wanted in capsys.readouterr().err
    assert cli.main(["plan", "--no-plugins", str(path)]) == 0
    path.write_text(POOL + SETTINGS.replace("loud", "quiet"))
    assert cli.main(["check", str(path)]) == 0
    assert cli.main(["plan", str(path)]) == 0


def test_an_announcer_config_no_plugin_registers_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(POOL + SETTINGS.replace("name: recording", "name: recordin").replace("loud", "quiet"))
    install(monkeypatch, {"good": GOOD})
    assert cli.main(["check", str(path)]) == 1
    assert (f"{path}:10: AnnouncerConfig/recordin: no installed plugin registers announcer protocol 'recordin'; "
            "did you mean recording?") in capsys.readouterr().out


def test_the_kubernetes_watcher_runs_the_validators() -> None:
    def no(config: Config) -> list[Diagnostic]:
        return [error(API_SOURCE, "AnnouncerConfig", "x", "plugin says no")]

    objects = [{"apiVersion": "metalloid.io/v1alpha1", "kind": "AnnouncerConfig", "metadata": {"name": "x"}}]
    _, diagnostics = build_config(objects, lb_class=None, validators=[no])
    assert [d.message for d in diagnostics] == ["plugin says no"]
    _, diagnostics = build_config(objects, lb_class=None)
    assert diagnostics == []


def test_the_file_watcher_runs_the_validators(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from supervisor.watching.loader import default_loader

    path = tmp_path / "c.yaml"
    path.write_text(POOL + SETTINGS)
    install(monkeypatch, {"good": GOOD, "typo": module("t", metalloid_register_announcer=_register)})
    config, diagnostics = default_loader("n1")([str(path)])
    assert config is None
    messages = [str(d) for d in diagnostics]
    assert any("spec.settings.mode: 'loud' is not quiet" in m for m in messages)
    # A broken plugin is not the config's fault: a warning naming it and its hook, not a rejection.
    path.write_text(POOL + SETTINGS.replace("loud", "quiet"))
    config, diagnostics = default_loader("n1")([str(path)])
    assert config is not None
    assert [d.is_error for d in diagnostics if "typo" in str(d)] == [False]
    assert any("(hook metalloid_register_announcer)" in str(d) for d in diagnostics)


@pytest.mark.parametrize("command", ["run", "speaker"])
def test_an_announcers_name_no_plugin_has_is_an_error_at_start(tmp_path: Path, command: str) -> None:
    """docs/plugins.md: a name in --announcers that no installed plugin registers is an error at start."""
    import os
    import subprocess
    import sys

    path = tmp_path / "c.yaml"
    path.write_text(POOL)
    where = (["--config", str(path), "--state-dir", str(tmp_path / "state")] if command == "run" else
             ["--insecure", "--api-server", "http://127.0.0.1:9"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("METALLOID_")}
    # A timeout, not a hang, if it did start: the supervisor is killed and its workers die with it.
    done = subprocess.run([str(Path(sys.executable).with_name("metalloid")), command, "--node", "n1", *where,
                           "--metrics-host", "127.0.0.1", "--metrics-port", "0", "--announcers", "layer2,layr2"],
                          capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 1, done.stderr
    assert f"metalloid {command}: --announcers: no installed plugin named layr2 (installed: " in done.stderr
