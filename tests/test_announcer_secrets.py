"""`AnnouncerHost.read_secret` (plugin API 1.2): one Secret through the host's own stdlib API client.

Against the fake API server over real HTTP: the decoded data, the HTTP status on failure
(`SecretUnavailable.code`), no API in standalone mode, and the official `kubernetes` package
never imported for it (that import is what a plugin reading Secrets used to cost).
"""

from __future__ import annotations

import base64
import queue
import subprocess
import sys

import pytest

from supervisor.announcing.api import SecretUnavailable
from supervisor.announcing.host import QueueHost
from supervisor.kubernetes.secrets import SecretReader
from supervisor.roles import Mode
from tests.fakeapi import FakeApiServer


def host(mode: Mode, reader: SecretReader | None = None) -> QueueHost:
    return QueueHost(node_name="n1", protocol="bgp", outbox=queue.Queue(), mode=mode,
                     secrets=reader.read if reader else None)  # fmt: skip


def test_a_secret_s_data_is_read_decoded(api: FakeApiServer) -> None:
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tor", "namespace": "metallb-system"},
                "data": {"password": base64.b64encode(b"s3cret").decode(), "raw": base64.b64encode(b"\0\1").decode()}})
    kube = host(Mode.KUBERNETES, SecretReader(api_host=api.url))
    assert kube.mode == "kubernetes"
    assert dict(kube.read_secret("metallb-system", "tor")) == {"password": b"s3cret", "raw": b"\0\1"}
    with pytest.raises(SecretUnavailable, match="metallb-system/absent") as missing:
        kube.read_secret("metallb-system", "absent")
    assert missing.value.code == 404


def test_an_unreachable_api_server_is_code_zero() -> None:
    kube = host(Mode.KUBERNETES, SecretReader(api_host="http://127.0.0.1:9"))  # discard port: refused
    with pytest.raises(SecretUnavailable) as failed:
        kube.read_secret("metallb-system", "tor")
    assert failed.value.code == 0 and "metallb-system/tor" in str(failed.value)


def test_standalone_has_no_api_to_read_from() -> None:
    alone = host(Mode.STANDALONE)
    assert alone.mode == "standalone"
    with pytest.raises(SecretUnavailable, match="no Kubernetes API in standalone mode") as failed:
        alone.read_secret("metallb-system", "tor")
    assert failed.value.code == 0


def test_reading_a_secret_does_not_import_the_official_client(api: FakeApiServer) -> None:
    api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tor", "namespace": "metallb-system"},
                "data": {"password": base64.b64encode(b"s3cret").decode()}})
    code = (
        "import sys\n"
        "import plugins.bgp.announcer\n"
        "from supervisor.kubernetes.secrets import SecretReader\n"
        f"assert SecretReader(api_host={api.url!r}).read('metallb-system', 'tor') == {{'password': b's3cret'}}\n"
        "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
