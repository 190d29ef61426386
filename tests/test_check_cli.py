"""`metalloid check`: exit codes, output format, plugin validators."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor import cli, plugin_checks
from supervisor.config.diagnostics import Diagnostic, error
from supervisor.config.loading import load_config_files
from supervisor.config.model import Config, Source
from supervisor.hookspecs import ENTRY_POINT_GROUP, hookimpl
from supervisor.plugins_loader import PluginLoadFailure, build_plugin_manager

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
VALID = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
INVALID = sorted(p.name for p in (EXAMPLES / "invalid").glob("*.yaml"))


@pytest.mark.parametrize("name", VALID)
def test_every_example_passes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(EXAMPLES / name)]) == 0
    out = capsys.readouterr().out
    assert "0 errors" in out and "OK" in out.splitlines()[-1]


def test_the_examples_we_promise_exist() -> None:
    assert {"homelab.yaml", "sharing.yaml", "dual-stack.yaml", "ipv6.yaml", "namespace-pinned.yaml"} <= set(VALID)
    assert len(INVALID) >= 3


@pytest.mark.parametrize("name", INVALID)
def test_every_invalid_example_fails_with_file_and_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "invalid" / name)
    assert cli.main(["check", path]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith("fix the errors above")
    assert all(line.startswith(f"{path}:") for line in lines[:-1]) and len(lines) > 1


def test_homelab_warns_about_pi_hole_but_passes(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "homelab.yaml")
    assert cli.main(["check", path]) == 0
    out = capsys.readouterr().out
    assert f"{path}:57: Service/pihole/pi-hole: warning: requested IP 10.0.0.200 is in no pool" in out
    assert out.splitlines()[-1] == "1 file checked: OK (0 errors, 1 warning)"


def test_quiet_hides_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "-q", str(EXAMPLES / "homelab.yaml")]) == 0
    assert "warning:" not in capsys.readouterr().out


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert cli.main(["check", str(EXAMPLES / "homelab.yaml"), str(missing)]) == 2
    assert f"metalloid check: cannot read {missing}: No such file or directory" in capsys.readouterr().out


def test_several_files_are_one_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second = tmp_path / "more.yaml"
    second.write_text("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: first-pool}\n"
                      "spec: {addresses: [10.0.99.0/24]}\n")
    assert cli.main(["check", str(EXAMPLES / "homelab.yaml"), str(second)]) == 1
    out = capsys.readouterr().out
    assert f"{second}:1: IPAddressPool/first-pool: a second IPAddressPool named 'first-pool'" in out
    assert "2 files checked: 1 error" in out


class _Plugin:
    @hookimpl
    def metalloid_validate_config(self, config: Config) -> list[Diagnostic]:
        return [error(Source(file="plugin", line=1), "Plugin", "fake", f"saw {len(config.pools)} pool(s)")]


class _Broken:
    @hookimpl
    def metalloid_validate_confg(self, config: Config) -> list[Diagnostic]:  # misspelled on purpose
        return []


def _fake_entry_points(plugins: dict[str, Any]) -> Any:
    def entry_points(*, group: str) -> list[Any]:
        assert group == ENTRY_POINT_GROUP
        return [SimpleNamespace(name=n, value=f"fake:{n}", load=(lambda p=p: p)) for n, p in plugins.items()]
    return entry_points


def _missing() -> Any:
    raise ModuleNotFoundError("No module named 'not_there'")


def test_plugin_validators_are_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points({"fake": _Plugin()}))
    assert cli.main(["check", str(EXAMPLES / "homelab.yaml")]) == 1
    assert "plugin:1: Plugin/fake: saw 1 pool(s)" in capsys.readouterr().out
    assert cli.main(["check", "--no-plugins", str(EXAMPLES / "homelab.yaml")]) == 0


def test_no_plugins_installed_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points({}))
    config, _ = load_config_files([str(EXAMPLES / "homelab.yaml")])
    assert config is not None
    # Only the AnnouncerConfig check is left, and homelab.yaml has none.
    assert [validator(config) for validator in plugin_checks.plugin_validators()] == [[]]
    assert cli.main(["check", str(EXAMPLES / "homelab.yaml")]) == 0


def test_broken_plugins_are_reported_and_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failures: list[PluginLoadFailure] = []
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points({"typo": _Broken(), "good": _Plugin()}))
    pm = build_plugin_manager(failures=failures)
    assert [name for name, _ in pm.list_name_plugin()] == ["good"]
    assert [f.name for f in failures] == ["typo"] and "metalloid_validate_confg" in failures[0].reason
    with pytest.raises(Exception, match="metalloid_validate_confg"):
        build_plugin_manager(strict=True)
    assert cli.main(["check", str(EXAMPLES / "homelab.yaml")]) == 1
    out = capsys.readouterr().out
    assert ("<plugins>:0: Plugin/typo: plugin 'typo' (fake:typo) could not be loaded: unknown hook "
            "'metalloid_validate_confg'") in out
    assert "(hook metalloid_validate_confg)" in out
    # A load failure alone fails the check: the plugin's own checks were skipped.
    monkeypatch.setattr(importlib.metadata, "entry_points", _fake_entry_points({"typo": _Broken()}))
    assert cli.main(["check", str(EXAMPLES / "homelab.yaml")]) == 1
    assert "1 error" in capsys.readouterr().out


def test_import_errors_of_plugins_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(*, group: str) -> list[Any]:
        return [SimpleNamespace(name="gone", value="not_there", load=_missing)]
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    failures: list[PluginLoadFailure] = []
    build_plugin_manager(failures=failures)
    assert [str(f) for f in failures] == [
        "plugin 'gone' (not_there) could not be loaded: ModuleNotFoundError: No module named 'not_there'"]


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    out = capsys.readouterr().out
    assert "FILE:LINE: Kind/name" in out and "Exit status" in out
