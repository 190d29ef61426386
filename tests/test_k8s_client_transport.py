"""metalloid's own API transport (`kubernetes/client.py`): in a pod it speaks HTTPS with the service account.

The fake API server tests cover plain HTTP (`host`); these check what only a
pod sees: the service account's CA verifies the server, its token goes as a
Bearer header and is read again after a rotation, and a missing mount is a
clear error. The server here is a stdlib HTTPS server with a certificate made
by `openssl` for the test.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from supervisor.kubernetes import client as client_module
from supervisor.kubernetes.client import ApiError, RawClient, in_cluster_endpoint


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200 if self.path.startswith("/api") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def https_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


def _service_account(tmp_path: Path, ca: Path, token: str) -> Path:
    root = tmp_path / "serviceaccount"
    root.mkdir()
    (root / "ca.crt").write_bytes(ca.read_bytes())
    (root / "token").write_text(token + "\n")
    return root


def test_in_a_pod_the_service_accounts_ca_and_token_reach_the_api(
    https_server: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = https_server
    root = _service_account(tmp_path, cert, "first-token")
    endpoint = in_cluster_endpoint({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)},
                                   root)
    client = RawClient(client_module.StdlibTransport(endpoint, user_agent="metalloid-test"))
    try:
        answer = client.request("GET", "/api/v1/nodes", query={"limit": 5})
        assert answer == {"path": "/api/v1/nodes?limit=5", "authorization": "Bearer first-token"}
        # The kubelet rotates the token file; the client reads it again after TOKEN_REREAD_SECONDS.
        (root / "token").write_text("second-token\n")
        monkeypatch.setattr(client_module, "TOKEN_REREAD_SECONDS", 0.0)
        assert client.request("GET", "/api/v1/pods")["authorization"] == "Bearer second-token"
        with pytest.raises(ApiError) as missing:
            client.request("GET", "/nothing")
        assert missing.value.code == 404
    finally:
        client.close()


def test_a_server_the_service_accounts_ca_did_not_sign_is_refused(
    https_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = https_server
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(other / "k"), "-out", str(other / "c")], check=True, capture_output=True)
    root = _service_account(tmp_path, other / "c", "token")
    endpoint = in_cluster_endpoint({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)},
                                   root)
    client = RawClient(client_module.StdlibTransport(endpoint))
    with pytest.raises(ApiError) as refused:
        client.request("GET", "/api/v1/nodes")
    assert refused.value.code == 0 and "CERTIFICATE_VERIFY_FAILED" in refused.value.message
    client.close()


def test_a_pod_without_its_service_account_mount_is_told_so(tmp_path: Path) -> None:
    with pytest.raises(ApiError, match="automountServiceAccountToken"):
        in_cluster_endpoint({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    with pytest.raises(ApiError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_endpoint({}, tmp_path)
    root = tmp_path / "sa"
    root.mkdir()
    (root / "token").write_text("t")
    (root / "ca.crt").write_text("")
    assert in_cluster_endpoint({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
                               root).url == "https://[fd00::1]:6443"
