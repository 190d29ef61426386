"""The `bgp` AnnouncerConfig's settings are checked with the rest of the config (`metalloid check`,
every reload): a typo is a FILE:LINE error naming the setting and the fix, not a failed announcer
start after the config was accepted (the plugin's `metalloid_validate_config`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor import cli

POOL = ("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
        "spec: {addresses: [10.0.0.0/24]}\n")
BGP = ("---\napiVersion: metalloid.io/v1alpha1\nkind: AnnouncerConfig\nmetadata: {name: bgp}\n"
       "spec:\n  settings:\n    LINE\n")


@pytest.mark.parametrize(("line", "says"), [
    ("drain_seconds: 5", "spec.settings.drain_seconds: 5 is not a number of seconds from 0 to 2"),
    ("drain_seconds: soon", "spec.settings.drain_seconds: 'soon' is not a number of seconds from 0 to 2"),
    ("poll_seconds: 0", "spec.settings.poll_seconds: 0 is not a number of seconds from 0.05 to 60"),
    ("incremental_apply: 'no'", "spec.settings.incremental_apply: 'no' is not true or false"),
    ("run_dir: 7", "spec.settings.run_dir: 7 is not a path; write it as a string"),
    ("drian_seconds: 1", "spec.settings.drian_seconds: is not a setting of the bgp announcer; it has "
                         "drain_seconds, frr_bin_dir, frr_reload, incremental_apply, manage_daemons, "
                         "poll_seconds, run_dir, secrets_dir, vtysh"),
])
def test_a_bad_setting_is_refused_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str,
                                                says: str) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(POOL + BGP.replace("LINE", line))
    assert cli.main(["check", str(path)]) == 1
    assert f"{path}:11: AnnouncerConfig/bgp: {says}" in capsys.readouterr().out


def test_the_documented_settings_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(POOL + BGP.replace("LINE", "drain_seconds: 0.5\n    poll_seconds: 1\n    incremental_apply: true\n"
                                            "    manage_daemons: true\n    run_dir: /run/metalloid/frr/{node}"))
    assert cli.main(["check", str(path)]) == 0, capsys.readouterr().out
