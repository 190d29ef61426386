"""The bgp plugin's FRR shell, its pure parts: settings, FRR's JSON, passwordSecret files."""

from __future__ import annotations

from pathlib import Path

from plugins.bgp.frr import parse_neighbors, secret_password, settings_from

NEIGHBORS = {
    "default": {
        "vrfId": 0, "vrfName": "default",
        "10.0.10.254": {
            "remoteAs": 64501, "bgpState": "Established", "bgpTimerUpString": "00:01:02",
            "messageStats": {"updatesSent": 4, "updatesRecv": 1},
            "addressFamilyInfo": {"ipv4Unicast": {"sentPrefixCounter": 2}, "ipv6Unicast": {"sentPrefixCounter": 1}},
        },
    },
    "red": {"vrfId": 5, "vrfName": "red", "10.9.0.1": {"bgpState": "Active", "messageStats": {}}},
}


def test_neighbors_from_show_bgp_vrf_all_neighbors_json() -> None:
    found = {(n.vrf, n.address): n for n in parse_neighbors(NEIGHBORS)}
    up = found[("", "10.0.10.254")]
    assert (up.state, up.established, up.prefixes_sent, up.updates_sent) == ("Established", True, 3, 4)
    down = found[("red", "10.9.0.1")]
    assert (down.established, down.prefixes_sent, down.updates_sent) == (False, 0, 0)


def test_settings_defaults_by_mode_and_node_substitution() -> None:
    standalone = settings_from({}, node="n1", mode="standalone")
    assert standalone.manage_daemons is True
    assert str(standalone.run_dir) == "/run/metalloid/frr/n1"
    k8s = settings_from({}, node="n1", mode="kubernetes")
    assert (k8s.manage_daemons, str(k8s.run_dir), k8s.secrets_dir) == (False, "/var/run/frr", None)
    custom = settings_from({"run_dir": "/srv/{node}/frr", "manage_daemons": False}, node="n2", mode="standalone")
    assert (str(custom.run_dir), custom.manage_daemons) == ("/srv/n2/frr", False)


def test_password_secret_from_a_file_or_kubernetes(tmp_path: Path) -> None:
    (tmp_path / "tor-pw").write_text("s3cret\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "tor-pw").write_text("namespaced\n")
    assert secret_password(tmp_path, "metallb-system", "tor-pw") == "s3cret"
    assert secret_password(tmp_path, "other", "tor-pw") == "namespaced"
    assert secret_password(tmp_path, "metallb-system", "missing") is None
    assert secret_password(None, "metallb-system", "tor-pw") is None
    seen = []
    assert secret_password(None, "ns", "name", read_secret=lambda ns, n: seen.append((ns, n)) or "k8s") == "k8s"
    assert seen == [("ns", "name")]
