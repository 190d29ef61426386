"""`metalloid status` against a stub node serving fixture /status JSON over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.cli import main
from tests.runtime_helpers import free_port

FIXTURE = Path(__file__).parent / "fixtures" / "status_homelab.json"


def load_fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


class StubNode:
    """Serves `document` at /status (and 404 elsewhere), like a metalloid node."""

    def __init__(self, document: Any) -> None:
        self.document = document
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/status":
                    self.send_error(404)
                    return
                body = stub.document if isinstance(stub.document, bytes) else json.dumps(stub.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def node() -> Iterator[StubNode]:
    stub = StubNode(load_fixture())
    yield stub
    stub.close()


def table_rows(text: str, title: str) -> list[list[str]]:
    """The rows (header first) of the table under `title`, split on runs of 3+ spaces."""
    import re

    lines = text.split(f"{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [re.split(r" {3,}", line.strip()) for line in lines]


def test_services_table(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--endpoint", node.endpoint]) == 0
    rows = table_rows(capsys.readouterr().out, "SERVICES")
    assert rows == [
        ["NAMESPACE", "NAME", "EXTERNAL-IP", "POOL", "ANNOUNCED-BY", "STATUS"],
        ["ingress-nginx", "ingress-nginx-controller", "10.0.10.10", "first-pool", "n3 (layer2)", "Announced"],
        ["pihole", "pi-hole", "<pending>", "<none>", "<none>", "Pending"],
        ["media", "jellyfin", "10.0.10.11", "first-pool", "<none>", "NotAnnounced"],
    ]


def test_pending_reason_is_printed_with_the_explain_hint(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    main(["status", "--endpoint", node.endpoint])
    out = capsys.readouterr().out
    assert "pihole/pi-hole is pending: requested IP 10.0.0.200 is in no IPAddressPool" in out
    assert "metalloid explain pihole/pi-hole" in out


def test_pools_members_workers_tables(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    main(["status", "--endpoint", node.endpoint])
    out = capsys.readouterr().out
    assert table_rows(out, "POOLS") == [
        ["NAME", "ADDRESSES", "IPV4-TOTAL", "IPV4-ASSIGNED", "IPV4-AVAILABLE"],
        ["first-pool", "10.0.10.10-10.0.10.99", "90", "2", "88"],
    ]
    assert table_rows(out, "MEMBERS")[1:] == [
        ["n1", "yes", "0ms ago", "yes"], ["n2", "NO", "12s ago", "yes"], ["n3", "yes", "80ms ago", "yes"]]
    assert table_rows(out, "WORKERS") == [
        ["NAME", "STATE", "PID", "RESTARTS", "UPTIME", "LAST-ERROR"],
        ["watcher", "running", "4101", "0", "1h1m", "<none>"],
        ["allocator", "running", "4102", "1", "42s", "killed by signal 9"],
        ["announcer-layer2", "running", "4103", "0", "1h1m", "<none>"],
    ]
    assert "CONFIG: examples/homelab.yaml   GENERATION: 2   STATE: loaded" in out


def test_stale_config_is_shown_with_its_errors(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.document["config"].update(stale=True, errors=["homelab.yaml:12: IPAddressPool/first-pool: bad range"])
    main(["status", "--endpoint", node.endpoint])
    out = capsys.readouterr().out
    assert "STATE: STALE" in out
    assert "error: homelab.yaml:12: IPAddressPool/first-pool: bad range" in out


def test_dual_stack_pools_get_ipv6_columns(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.document["pools"][0].update(total_v6=256, assigned_v6=1, available_v6=255)
    main(["status", "--endpoint", node.endpoint])
    rows = table_rows(capsys.readouterr().out, "POOLS")
    assert rows[0][-3:] == ["IPV6-TOTAL", "IPV6-ASSIGNED", "IPV6-AVAILABLE"]
    assert rows[1][-3:] == ["256", "1", "255"]


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_machine_output_is_the_document(node: StubNode, capsys: pytest.CaptureFixture[str], output: str) -> None:
    assert main(["status", "--endpoint", node.endpoint, "-o", output]) == 0
    text = capsys.readouterr().out
    assert (json.loads(text) if output == "json" else yaml.safe_load(text)) == load_fixture()


def test_unreachable_endpoint_names_the_url_and_what_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--endpoint", endpoint]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach {endpoint}/status" in err
    assert "--metrics-port" in err and "--endpoint" in err


def test_a_non_metalloid_endpoint_is_a_clear_error(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.document = b"<html>hello</html>"
    assert main(["status", "--endpoint", node.endpoint]) == 1
    assert "did not return JSON" in capsys.readouterr().err


def test_endpoint_without_scheme_works(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--endpoint", node.endpoint.removeprefix("http://")]) == 0
    assert "ingress-nginx-controller" in capsys.readouterr().out


def test_an_empty_node_prints_without_tables(node: StubNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.document = {"node": "n1", "mode": "standalone", "version": "0.1.0",
                     "config": {"origin": "x.yaml", "generation": 0, "loaded": False}}
    assert main(["status", "--endpoint", node.endpoint]) == 0
    out = capsys.readouterr().out
    assert "STATE: NOT LOADED" in out
    assert "SERVICES: none" in out


def test_members_alive_by_fallback_say_why() -> None:
    from supervisor.commands.status import _member_row

    fallback = {"name": "n2", "alive": True, "basis": "kubernetes-ready", "last_heard_seconds": None}
    heard = {"name": "n3", "alive": True, "basis": "heartbeat", "last_heard_seconds": 0.05}
    assert _member_row(fallback)[1] == "yes (kubernetes-ready)"
    assert _member_row(heard)[1] == "yes"
    assert _member_row({"name": "n4", "alive": False, "basis": "heartbeat"})[1] == "NO"


def test_a_service_without_serving_endpoints_says_so() -> None:
    from supervisor.commands.status import _service_row

    service = {"namespace": "shop", "name": "web", "ips": ["10.0.10.10"], "pool": "first-pool", "announced": {},
               "elections": {"layer2": {"winner": None, "ranking": [], "excluded": [],
                                        "not_served": "the Service has no serving endpoint"}}}
    assert _service_row(service, "n1")[-1] == "NoEndpoints"
    service["elections"]["layer2"]["not_served"] = None
    assert _service_row(service, "n1")[-1] == "NotAnnounced"
