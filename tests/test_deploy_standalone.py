"""The standalone install: the systemd unit, the example /etc/metalloid/
layout and the container image's Dockerfile."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy_support import DEPLOY

UNIT = DEPLOY / "systemd" / "metalloid.service"
EXAMPLE = DEPLOY / "standalone" / "etc-metalloid" / "metalloid.yaml"


def unit(path: Path = UNIT) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def test_unit_runs_the_documented_command() -> None:
    service = unit()["Service"]
    assert service["ExecStart"] == (
        "/usr/local/bin/metalloid run --config /etc/metalloid/metalloid.yaml --node %H "
        "--state-dir /var/lib/metalloid --membership-key-file /etc/metalloid/membership.key"
    )
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["ExecStartPre"] == "/usr/local/bin/metalloid check /etc/metalloid/metalloid.yaml"
    assert service["StateDirectory"] == "metalloid"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_unit_is_hardened() -> None:
    service = unit()["Service"]
    assert set(service["CapabilityBoundingSet"].split()) == {"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_BPF"}
    assert set(service["AmbientCapabilities"].split()) <= {"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_BPF"}
    # The system calls: systemd's service set, and bpf(2) for the in-kernel ARP answers only.
    assert service["SystemCallFilter"].split() == ["@system-service", "bpf"]
    assert service["User"] != "root"
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
    }
    assert {k: service.get(k) for k in expected} == expected
    assert "AF_PACKET" in service["RestrictAddressFamilies"].split()
    # The local bind writes arp_ignore/arp_announce: /proc/sys must stay writable.
    assert "ProtectKernelTunables" not in service


def test_sysusers_creates_the_service_user() -> None:
    lines = [line for line in (DEPLOY / "systemd" / "metalloid.sysusers").read_text().splitlines()
             if line and not line.startswith("#")]
    assert len(lines) == 1 and lines[0].split()[:2] == ["u", unit()["Service"]["User"]]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify insists that ExecStart's binary exists; point it at one that does.
    copy = tmp_path / "metalloid.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/metalloid", shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "metalloid.service" not in result.stderr, result.stderr  # no warnings about our unit
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)],
                              capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    if security.returncode != 0 or match is None:
        pytest.skip(f"systemd-analyze security --offline unsupported here: {security.stderr.strip()[:200]}")
    assert float(match.group(1)) <= 3.0, security.stdout


BGP_DROP_IN = DEPLOY / "systemd" / "metalloid.service.d" / "bgp.conf"


def drop_in() -> configparser.RawConfigParser:
    return unit(BGP_DROP_IN)


# What managed FRR needs beyond metalloid's own (tests/test_bgp_frr_lab.py starts the daemons with exactly the
# drop-in's set: test_managed_frr_runs_with_only_the_drop_ins_capabilities).
FRR_CAPABILITIES = {"CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_KILL",
                    "CAP_DAC_OVERRIDE"}  # fmt: skip


def test_the_bgp_drop_in_runs_as_root_with_only_frrs_capabilities_added() -> None:
    base, bgp = unit()["Service"], drop_in()["Service"]
    assert (bgp["User"], bgp["Group"]) == ("root", "root")
    assert bgp["AmbientCapabilities"] == ""  # root holds the bounding set; nothing to pass on ambiently
    assert set(bgp["CapabilityBoundingSet"].split()) == set(base["CapabilityBoundingSet"].split()) | FRR_CAPABILITIES
    # The drop-in loosens nothing else: the lockdown lines are the base unit's.
    assert set(bgp) == {"User", "Group", "AmbientCapabilities", "CapabilityBoundingSet", "RuntimeDirectoryMode"}
    assert base["NoNewPrivileges"] == "yes" and base["SystemCallFilter"] == "@system-service bpf"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit_with_the_bgp_drop_in(tmp_path: Path) -> None:
    copy = tmp_path / "metalloid.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/metalloid", shutil.which("true") or "/bin/true"))
    (tmp_path / "metalloid.service.d").mkdir()
    shutil.copy(BGP_DROP_IN, tmp_path / "metalloid.service.d" / "bgp.conf")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify reads the drop-in: a misspelt key in it is reported here ("Unknown key ... bgp.conf").
    assert result.returncode == 0, result.stderr
    assert "metalloid.service" not in result.stderr, result.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(copy)],
                              capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    if security.returncode != 0 or match is None:
        pytest.skip(f"systemd-analyze security --offline unsupported here: {security.stderr.strip()[:200]}")
    assert "Service runs as root user" in security.stdout  # the drop-in is in force
    # Root with a bounded set and the base unit's lockdown: still "OK" in systemd's rating (about 3.7).
    assert float(match.group(1)) <= 4.0, security.stdout


def test_example_config_passes_metalloid_check() -> None:
    loading = pytest.importorskip("supervisor.config.loading")
    config, diagnostics = loading.load_config_files([str(EXAMPLE)])
    assert [str(d) for d in diagnostics] == []
    assert config is not None and config.pools and config.l2_advertisements and len(config.nodes) >= 2


def test_example_layout_documents_the_key() -> None:
    readme = (EXAMPLE.parent / "README.md").read_text()
    assert "membership.key" in readme and "openssl rand" in readme
    assert not (EXAMPLE.parent / "membership.key").exists(), "never ship a key"


def test_dockerfile_runs_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    final_stage = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, flags=re.MULTILINE)
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid not in {"0", "root"}
    assert re.search(r"pip install .*metalloid", final_stage)
    assert 'ENTRYPOINT ["metalloid"]' in final_stage
    for path in ("supervisor", "plugins", "pyproject.toml"):
        assert path in text
