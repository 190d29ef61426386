"""`metalloid explain`: against a stub node (fixture /status) and offline from examples/homelab.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.cli import main
from tests.runtime_helpers import free_port
from tests.test_status_cli import StubNode, load_fixture

ROOT = Path(__file__).resolve().parent.parent
HOMELAB = str(ROOT / "examples" / "homelab.yaml")


@pytest.fixture
def node() -> Iterator[StubNode]:
    stub = StubNode(load_fixture())
    yield stub
    stub.close()


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["explain", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def explain_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = explain(capsys, *args, "-o", "json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


# --- online, from a node's /status -----------------------------------------------


def test_announced_service_names_the_node_the_ranking_and_the_excluded(
    node: StubNode, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = explain(capsys, "ingress-nginx/ingress-nginx-controller", "--endpoint", node.endpoint)
    assert code == 0
    assert "IP: 10.0.10.10 from pool first-pool." in out
    assert "Announced (layer2): by n3 (on eth0)." in out
    assert 'sha256("<node>#10.0.10.10")' in out
    assert "1. n3   <- announces" in out
    assert "n2: not alive in membership" in out


def test_pending_service_gives_the_reason_and_the_fix(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    data = explain_json(capsys, "pihole/pi-hole", "--endpoint", node.endpoint)
    assert data["ip"]["state"] == "pending"
    assert "10.0.0.200" in data["ip"]["why"]
    assert "add 10.0.0.200 to an IPAddressPool's spec.addresses" in data["ip"]["hint"]
    assert data["not_announced"] == "a Service without an IP is not announced"


def test_assigned_but_unannounced_points_at_the_missing_l2advertisement(
    node: StubNode, capsys: pytest.CaptureFixture[str]
) -> None:
    data = explain_json(capsys, "media/jellyfin", "--endpoint", node.endpoint)
    assert data["announcement"] == []
    assert "no L2Advertisement covers pool first-pool" in data["not_announced"]


def test_no_candidate_lists_every_excluded_node_with_a_fix(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    service = node.document["services"][0]
    service["announced"] = {}
    service["elections"]["layer2"] = {"winner": None, "ranking": [], "excluded": [
        ["n1", "labelled node.kubernetes.io/exclude-from-external-load-balancers"],
        ["n2", "not alive in membership (no heartbeat within the deadline)"],
        ["n3", "not selected by the nodeSelectors of any advertisement for the pool"]]}
    code, out, _ = explain(capsys, "ingress-nginx/ingress-nginx-controller", "--endpoint", node.endpoint)
    assert code == 0
    assert "Announced (layer2): no." in out
    assert "every node is excluded" in out
    assert "remove that label from the node" in out
    assert "spec.nodeSelectors do not match" in out


def test_a_kubernetes_node_that_knows_no_nodes_says_so(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.document["mode"] = "kubernetes"
    service = node.document["services"][0]
    service["announced"] = {}
    service["elections"]["layer2"] = {"winner": None, "ranking": [], "excluded": []}
    data = explain_json(capsys, "ingress-nginx/ingress-nginx-controller", "--endpoint", node.endpoint)
    [layer2] = data["announcement"]
    assert layer2["state"] == "no-candidate"
    assert "knows no Node objects" in layer2["why"] and "every node is excluded" not in layer2["why"]
    assert "list and watch Nodes" in layer2["hints"][0]


def test_elected_but_not_yet_seen_announcing(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.document["services"][0]["announced"] = {}
    data = explain_json(capsys, "ingress-nginx/ingress-nginx-controller", "--endpoint", node.endpoint)
    assert data["announcement"][0]["state"] == "elected"
    assert "has not seen it announce yet" in data["announcement"][0]["why"]


def test_unknown_service_lists_close_names(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, "default/pi-hole", "--endpoint", node.endpoint)
    assert code == 1
    assert "no LoadBalancer Service default/pi-hole in node n1" in err
    assert "Did you mean: pihole/pi-hole?" in err


def test_unreachable_node_suggests_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, "pihole/pi-hole", "--endpoint", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "cannot reach" in err and "--config FILE" in err


# --- offline, from the file --------------------------------------------------------


def test_offline_pihole_is_pending_because_10_0_0_200_is_in_no_pool(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = explain(capsys, "pihole/pi-hole", "--config", HOMELAB)
    assert code == 0
    assert "IP: none, it is pending." in out
    assert "10.0.0.200" in out.split("Why:", 1)[1].split("\n", 1)[0]
    assert "Fix: add 10.0.0.200 to an IPAddressPool" in out
    assert "every Node in the file is considered alive" in out


def test_offline_ingress_is_auto_assigned_and_announced_by_metallbs_winner(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = explain_json(capsys, "ingress-nginx/ingress-nginx-controller", "--config", HOMELAB)
    assert data["ip"] == {"state": "assigned", "ips": ["10.0.10.10"], "pool": "first-pool", "hint": None,
                          "why": data["ip"]["why"]}
    assert "asked for nothing" in data["ip"]["why"]
    [layer2] = data["announcement"]
    # sha256("n3#10.0.10.10") < sha256("n1#...") < sha256("n2#..."): MetalLB's order.
    assert (layer2["protocol"], layer2["state"], layer2["ranking"]) == ("layer2", "announced", ["n3", "n1", "n2"])


def test_offline_config_without_nodes_says_it_lists_no_node(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    documents = Path(HOMELAB).read_text().split("\n---\n")
    config = tmp_path / "no-nodes.yaml"
    config.write_text("\n---\n".join(d for d in documents if "kind: Node" not in d))
    code, out, _ = explain(capsys, "ingress-nginx/ingress-nginx-controller", "--config", str(config))
    assert code == 0
    announced = out.split("Announced (layer2): no.\n", 1)[1]
    assert announced.startswith("  Why: no node may announce it: the config lists no Node objects")
    assert "standalone mode takes membership and the election from the Node objects" in announced
    assert "Fix: add a Node object" in announced
    assert "every node is excluded" not in out


def test_offline_requested_ip_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "homelab.yaml"
    config.write_text(Path(HOMELAB).read_text().replace("loadBalancerIP: 10.0.0.200", "loadBalancerIP: 10.0.10.50"))
    data = explain_json(capsys, "pihole/pi-hole", "--config", str(config))
    assert data["ip"]["ips"] == ["10.0.10.50"]
    assert "it asks for 10.0.10.50" in data["ip"]["why"]


def test_offline_without_l2advertisement_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    documents = Path(HOMELAB).read_text().split("\n---\n")
    config = tmp_path / "no-l2.yaml"
    config.write_text("\n---\n".join(d for d in documents if "kind: L2Advertisement" not in d))
    data = explain_json(capsys, "ingress-nginx/ingress-nginx-controller", "--config", str(config))
    assert data["not_announced"].startswith("no L2Advertisement or BGPAdvertisement covers pool first-pool")


def test_offline_invalid_config_prints_the_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(Path(HOMELAB).read_text().replace("10.0.10.10-10.0.10.99", "10.0.10.99-10.0.10.10"))
    code, _, err = explain(capsys, "pihole/pi-hole", "--config", str(config))
    assert code == 1
    assert f"{config}:" in err and "is not valid" in err


def test_offline_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = explain(capsys, "pihole/pi-hole", "--config", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "nope.yaml" in err


NO_SERVING = """\
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ingress-nginx-controller-1
  namespace: ingress-nginx
  labels: {kubernetes.io/service-name: ingress-nginx-controller}
addressType: IPv4
endpoints:
  - addresses: [10.244.0.5]
    nodeName: node1
    conditions: {ready: false, serving: false, terminating: true}
"""


def test_offline_service_without_serving_endpoint_is_not_announced_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "no-endpoint.yaml"
    config.write_text(Path(HOMELAB).read_text() + NO_SERVING)
    code, out, _ = explain(capsys, "ingress-nginx/ingress-nginx-controller", "--config", str(config))
    assert code == 0
    assert "Announced (layer2): no.\n  Why: no node announces it: the Service has no serving endpoint" in out
    assert "Fix: the config lists EndpointSlices for ingress-nginx/ingress-nginx-controller" in out


def test_offline_advertisement_service_selectors_that_miss_the_service_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "selectors.yaml"
    text = Path(HOMELAB).read_text()
    assert "  ipAddressPools:\n    - first-pool\n" in text
    config.write_text(text.replace("  ipAddressPools:\n    - first-pool\n",
                                   "  ipAddressPools:\n    - first-pool\n  serviceSelectors:\n"
                                   "    - matchLabels: {expose: lan}\n", 1))  # fmt: skip
    code, out, _ = explain(capsys, "ingress-nginx/ingress-nginx-controller", "--config", str(config))
    assert code == 0
    assert "no L2Advertisement for pool first-pool selects this Service" in out
