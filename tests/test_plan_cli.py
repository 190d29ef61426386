"""`metalloid plan`: output shapes, exit codes and `--write-status` round trips."""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from supervisor.allocating.pinning import pin_status
from supervisor.cli import main
from supervisor.config.model import ServiceKey

ROOT = Path(__file__).resolve().parent.parent
HOMELAB = ROOT / "examples" / "homelab.yaml"


def plan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["plan", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_homelab_json_exact(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, str(HOMELAB), "-o", "json")
    assert code == 0
    assert json.loads(out) == {
        "services": [
            {"namespace": "ingress-nginx", "name": "ingress-nginx-controller", "ips": ["10.0.10.10"],
             "pool": "first-pool", "pending": None, "problem": None},
            {"namespace": "pihole", "name": "pi-hole", "ips": [], "pool": None,
             "pending": "requested IP 10.0.0.200 is in no IPAddressPool (pools: first-pool 10.0.10.10-10.0.10.99)",
             "problem": None},
        ],
        "pools": [
            {"name": "first-pool", "total_v4": 90, "assigned_v4": 1, "available_v4": 89,
             "total_v6": 0, "assigned_v6": 0, "available_v6": 0},
        ],
    }


def test_homelab_yaml_equals_json(capsys: pytest.CaptureFixture[str]) -> None:
    _, as_json, _ = plan(capsys, str(HOMELAB), "-o", "json")
    code, as_yaml, _ = plan(capsys, str(HOMELAB), "-o", "yaml")
    assert code == 0
    assert yaml.safe_load(as_yaml) == json.loads(as_json)


def test_homelab_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = plan(capsys, str(HOMELAB))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "EXTERNAL-IP", "POOL", "STATUS"]
    assert lines[1].split() == ["ingress-nginx", "ingress-nginx-controller", "10.0.10.10", "first-pool", "Assigned"]
    assert lines[2].split()[:5] == ["pihole", "pi-hole", "<pending>", "<none>", "Pending:"]
    assert "10.0.0.200 is in no IPAddressPool" in lines[2]
    pools = lines[lines.index("") + 1:]
    assert pools[0].split()[:4] == ["POOL", "V4-TOTAL", "V4-ASSIGNED", "V4-AVAILABLE"]
    assert pools[1].split() == ["first-pool", "90", "1", "89", "0", "0", "0"]
    # kubectl-style alignment: every column starts at the same offset on every row.
    assert lines[0].index("EXTERNAL-IP") == lines[1].index("10.0.10.10") == lines[2].index("<pending>")


SERVICE = """\
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default{annotations}
spec:
  type: LoadBalancer{spec}
  ports: [{{port: 80}}]
"""


def test_config_errors_exit_1_print_the_plan_with_every_service_pending(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  namespace: metallb-system\n"
        "spec:\n  addresses:\n    - 10.0.0.300/24\n" + SERVICE.format(name="web", annotations="", spec="")
    )
    for output in ("table", "json", "yaml"):
        code, out, err = plan(capsys, str(bad), "-o", output)
        assert code == 1, output
        assert re.search(rf"^{re.escape(str(bad))}:\d+: IPAddressPool/p: .*10\.0\.0\.300", err, re.MULTILINE)
        if output == "table":
            (row,) = [line for line in out.splitlines() if line.split()[:2] == ["default", "web"]]
            assert "<pending>" in row and "Pending: the config is rejected (IPAddressPool/p at " in row
            continue
        (web,) = (json.loads(out) if output == "json" else yaml.safe_load(out))["services"]
        assert web["ips"] == [] and web["pending"].startswith("the config is rejected (IPAddressPool/p at ")
        assert "keeps its last good config" in web["pending"]


def test_a_service_error_pends_that_service_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n  addresses: [10.0.0.0/30]\n"
        "---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}\n"
        + SERVICE.format(name="both", annotations="\n  annotations: {metallb.io/loadBalancerIPs: 10.0.0.1}",
                         spec="\n  loadBalancerIP: 10.0.0.2")
        + SERVICE.format(name="web", annotations="", spec="")
        + SERVICE.format(name="worse", annotations="\n  annotations: {metallb.io/loadBalancerIPs: '10.0.0.x'}",
                         spec="")
    )
    for output in ("table", "json", "yaml"):
        code, out, err = plan(capsys, str(path), "-o", output)
        assert code == 1, output
        assert f"{path}:19: Service/default/both: both spec.loadBalancerIP (10.0.0.2) and annotation" in err
        assert "Service/default/worse: annotation metallb.io/loadBalancerIPs: \"10.0.0.x\" is not an IP" in err
        if output == "table":
            rows = {line.split()[1]: line for line in out.splitlines()[1:4]}
            assert "10.0.0.0" in rows["web"] and "Assigned" in rows["web"]
            assert "Pending: both spec.loadBalancerIP (10.0.0.2) and annotation" in rows["both"]
            continue
        services = {s["name"]: s for s in (json.loads(out) if output == "json" else yaml.safe_load(out))["services"]}
        assert services["web"]["ips"] == ["10.0.0.0"] and services["web"]["pending"] is None
        assert services["both"]["ips"] == [] and "keep only the annotation" in services["both"]["pending"]
        assert services["both"]["problem"] == services["both"]["pending"]
        assert services["worse"]["ips"] == [] and "is not an IP address" in services["worse"]["pending"]


def test_write_status_refuses_a_config_with_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = ("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n"
            "  addresses: [10.0.0.0/30]\n" + SERVICE.format(name="web", annotations="", spec="")
            + SERVICE.format(name="bad", annotations="", spec="\n  loadBalancerIP: nope"))
    path.write_text(text)
    code, _, _ = plan(capsys, str(path), "--write-status")
    assert code == 1 and path.read_text() == text


def test_unreadable_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = plan(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml" in err


POOL_DOC = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: p
  namespace: metallb-system
spec:
  addresses: [10.0.0.10-10.0.0.12]
"""


def service_doc(name: str, extra: str = "") -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n"
        f"spec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n{extra}"
    )


def test_lb_class_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("---\n".join([POOL_DOC, service_doc("mine", "  loadBalancerClass: example.com/mine\n"),
                                  service_doc("plain")]))
    _, out, _ = plan(capsys, str(path), "-o", "json")
    assert [s["name"] for s in json.loads(out)["services"]] == ["plain"]
    _, out, _ = plan(capsys, str(path), "-o", "json", "--lb-class", "example.com/mine")
    assert [s["name"] for s in json.loads(out)["services"]] == ["mine"]


def strip_service_status(text: str) -> list[str]:
    """The file's lines with every Service's status block removed (what must stay unchanged)."""
    kept: list[str] = []
    for doc in re.split(r"(?m)^---\n", text):
        body = yaml.safe_load(doc)
        is_service = isinstance(body, dict) and body.get("kind") == "Service"
        skipping = False
        for line in doc.splitlines():
            if is_service and line.startswith("status:"):
                skipping = True
                continue
            if skipping and (line.startswith((" ", "\t")) or not line.strip()):
                continue
            skipping = False
            kept.append(line)
    return [line for line in kept if line.strip()]


def test_write_status_round_trip_homelab(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "homelab.yaml"
    shutil.copy(HOMELAB, path)
    original = path.read_text()
    code, before, err = plan(capsys, str(path), "-o", "json", "--write-status")
    assert code == 0
    assert "pinned the status of 2 Services" in err
    written = path.read_text()
    assert written != original
    assert strip_service_status(written) == strip_service_status(original)
    # No Service had a status yet: the edit only inserts lines, and only status blocks.
    matcher = difflib.SequenceMatcher(a=original.splitlines(), b=written.splitlines(), autojunk=False)
    edits = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    assert [op[0] for op in edits] == ["insert", "insert"]
    assert [written.splitlines()[op[3]] for op in edits] == ["status:", "status:"]
    documents = list(yaml.safe_load_all(written))
    by_name = {d["metadata"]["name"]: d for d in documents if d and d.get("kind") == "Service"}
    assert by_name["ingress-nginx-controller"]["status"] == {"loadBalancer": {"ingress": [{"ip": "10.0.10.10"}]}}
    assert by_name["pi-hole"]["status"] == {"loadBalancer": {}}
    # The Nodes' own status blocks are not Services' and stay as written.
    nodes = [d for d in documents if d and d.get("kind") == "Node"]
    assert nodes[0]["status"] == {"addresses": [{"type": "InternalIP", "address": "10.0.10.1"}]}
    # Plan again: same answer; write again: the file does not change.
    code, after, _ = plan(capsys, str(path), "-o", "json", "--write-status")
    assert code == 0
    assert json.loads(after) == json.loads(before)
    assert path.read_text() == written


def test_pinned_status_keeps_ips_when_order_would_change(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Pinned IPs hold even when a Service added later sorts first and would otherwise take .10."""
    path = tmp_path / "c.yaml"
    path.write_text("---\n".join([POOL_DOC, service_doc("web")]))
    plan(capsys, str(path), "--write-status")
    path.write_text(path.read_text() + "---\n" + service_doc("aaa-new"))
    _, out, _ = plan(capsys, str(path), "-o", "json")
    ips = {s["name"]: s["ips"] for s in json.loads(out)["services"]}
    assert ips == {"web": ["10.0.0.10"], "aaa-new": ["10.0.0.11"]}


def test_pin_status_replaces_stale_block_and_keeps_comments() -> None:
    text = (
        "# head comment\n" + POOL_DOC + "---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web  # the web front\n"
        "status:\n  loadBalancer:\n    ingress:\n      - ip: 10.9.9.9\n"
        "# a comment at column 0 after status\n"
        "spec:\n  type: LoadBalancer\n"
        "---\n" + service_doc("untouched", "status:\n  loadBalancer:\n    ingress:\n    - ip: 10.7.7.7\n")
    )
    pins = {ServiceKey(namespace="default", name="web"): (ipaddress.ip_address("10.0.0.11"),)}
    new, touched = pin_status(text, pins)
    assert touched == [ServiceKey(namespace="default", name="web")]
    assert "10.9.9.9" not in new
    assert "  name: web  # the web front\n" in new
    block = "status:\n  loadBalancer:\n    ingress:\n    - ip: 10.0.0.11\n"
    assert block + "# a comment at column 0 after status\nspec:" in new
    assert "- ip: 10.7.7.7" in new  # a Service not in pins is left alone
    assert new.startswith("# head comment\n")


@pytest.mark.parametrize(
    ("text", "expected_tail"),
    [
        pytest.param(service_doc("s").rstrip("\n"), "    - port: 80\nstatus:\n", id="no-trailing-newline"),
        pytest.param(service_doc("s") + "\n# trailing note\n",
                     "    - port: 80\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: 10.0.0.10\n\n# trailing note\n",
                     id="before-trailing-comment"),
        pytest.param(service_doc("s") + "status: {}\n", "    - port: 80\nstatus:\n  loadBalancer:\n",
                     id="inline-empty-status"),
    ],
)
def test_pin_status_edge_cases(text: str, expected_tail: str) -> None:
    new, _ = pin_status(text, {ServiceKey(namespace="default", name="s"): (ipaddress.ip_address("10.0.0.10"),)})
    assert expected_tail in new
    body = yaml.safe_load(new)
    assert body["status"] == {"loadBalancer": {"ingress": [{"ip": "10.0.0.10"}]}}
    assert body["spec"]["ports"] == [{"port": 80}]


def test_pin_status_keeps_crlf() -> None:
    text = service_doc("s").replace("\n", "\r\n")
    new, _ = pin_status(text, {ServiceKey(namespace="default", name="s"): (ipaddress.ip_address("fd00::1"),)})
    assert new.startswith(text)
    assert new.endswith("status:\r\n  loadBalancer:\r\n    ingress:\r\n    - ip: fd00::1\r\n")
    assert "\n" not in new.replace("\r\n", "")
