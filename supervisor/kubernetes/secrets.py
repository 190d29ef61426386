"""One Secret for an announcer plugin: `AnnouncerHost.read_secret`, over the host's own client.

A plugin may import only `supervisor.api`, so without this an announcer that
needs a Secret (the bgp plugin's BGPPeer passwordSecret) imported the official
`kubernetes` package into its process (+20.2 MiB PSS, 2026-12-06). The host
already speaks to the API with the standard library (`client.RawClient`: the
pod's service account, or `--api-server`); this reads one Secret with it.

The connection is made on the first read, in the announcer process that asks
(the speaker's announcers get the speaker's `--kubeconfig`/`--api-server`
through `AnnouncerSettings`), and reused. What the process may read is the
service account's RBAC's business: deploy/frr's Role grants `get` (only) on
Secrets in metalloid's namespace to the speaker.
"""

from __future__ import annotations

import base64
import binascii
import threading
import urllib.parse
from collections.abc import Callable

from supervisor.announcing.api import SecretUnavailable
from supervisor.kubernetes.client import ApiError, RawClient

TIMEOUT_SECONDS = 5.0  # one read; the plugin's worker thread waits, the host's loop does not


class SecretReader:
    """Reads Secrets for one announcer process (thread-safe; the client is made once)."""

    def __init__(self, *, kubeconfig: str | None = None, api_host: str | None = None,
                 connect: Callable[[], RawClient] | None = None) -> None:  # fmt: skip
        self._connect = connect or (lambda: RawClient.connect(kubeconfig=kubeconfig, host=api_host,
                                                              user_agent="metalloid-announcer"))
        self._client: RawClient | None = None
        self._lock = threading.Lock()

    def read(self, namespace: str, name: str) -> dict[str, bytes]:
        path = f"/api/v1/namespaces/{_quote(namespace)}/secrets/{_quote(name)}"
        try:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
            secret = client.request("GET", path, timeout=TIMEOUT_SECONDS)
        except ApiError as exc:
            raise SecretUnavailable(exc.code, f"reading Secret {namespace}/{name}: {exc}") from None
        except Exception as exc:  # a kubeconfig the official loader refuses, ...: not reached
            raise SecretUnavailable(0, f"reading Secret {namespace}/{name}: {type(exc).__name__}: {exc}") from None
        try:
            return {str(k): base64.b64decode(str(v), validate=True) for k, v in (secret.get("data") or {}).items()}
        except (binascii.Error, ValueError) as exc:
            raise SecretUnavailable(0, f"Secret {namespace}/{name}: data is not base64 ({exc})") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")
