"""Reading a node's /status from the command line (`metalloid status`, `metalloid explain`).

Stdlib only, so the commands start fast. Every failure becomes one
`StatusUnavailable` whose message names the URL and what to check.

The default endpoint follows the node's own HTTP settings when they are in
the environment (the manifests set METALLOID_METRICS_HOST to the pod's or
node's address, so `kubectl exec ... metalloid status` reaches it), and the
bearer token file the node uses (METALLOID_AUTH_TOKEN_FILE) is sent too.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from supervisor.serving.options import HttpOptionError, read_token

DEFAULT_ENDPOINT = "http://127.0.0.1:7472"


def default_endpoint() -> str:
    host = os.environ.get("METALLOID_METRICS_HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = os.environ.get("METALLOID_METRICS_PORT") or "7472"
    scheme = "https" if os.environ.get("METALLOID_METRICS_CERT_DIR") else "http"
    return f"{scheme}://{host}:{port}"


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """--endpoint, --auth-token-file and --insecure-skip-tls-verify, shared by `status` and `explain`."""
    endpoint = default_endpoint()
    parser.add_argument("--endpoint", default=endpoint, help=f"the node's HTTP address (default: {endpoint})")
    parser.add_argument("--auth-token-file", default=os.environ.get("METALLOID_AUTH_TOKEN_FILE") or None,
                        metavar="FILE", help="send the bearer token in FILE (the node's --auth-token-file)")
    parser.add_argument("--insecure-skip-tls-verify", action="store_true",
                        help="accept any certificate from an https:// endpoint (a self-signed one)")


def client_token(path: str | None) -> str | None:
    """The token in `path` (None without one); raises StatusUnavailable naming a bad file."""
    if not path:
        return None
    try:
        return read_token(path)
    except HttpOptionError as exc:
        raise StatusUnavailable(str(exc)) from None


class StatusUnavailable(Exception):
    """/status could not be read; the message says why and what to check."""


def status_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if "://" not in base:
        base = "http://" + base
    return base if base.endswith("/status") else base + "/status"


def fetch_status(endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = 5.0, token: str | None = None,
                 verify: bool = True) -> dict[str, Any]:
    # deferred: ~30 ms of CPU at every command's start (cli.py builds every command's flags), which
    # `metalloid run` spends before it forks its start-up check (BENCHMARKS.md, 2026-12-07)
    import ssl
    import urllib.error
    import urllib.request

    url = status_url(endpoint)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    context = None
    if url.startswith("https://") and not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            refusal = exc.read(500).decode("utf-8", "replace").strip()
            raise StatusUnavailable(f"{url} answered HTTP {exc.code}: {refusal}") from exc
        raise StatusUnavailable(
            f"{url} answered HTTP {exc.code}: is this a metalloid endpoint (metalloid run, controller or speaker)?"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason: object = getattr(exc, "reason", None) or exc
        raise StatusUnavailable(
            f"cannot reach {url}: {reason}.\n"
            "Check that metalloid is running on that host (systemctl status metalloid, or the speaker pod) "
            "and serves HTTP on that port (--metrics-port, default 7472); "
            "pass --endpoint http://HOST:PORT to ask another node."
        ) from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise StatusUnavailable(f"{url} did not return JSON ({exc}): is this a metalloid endpoint?") from exc
    if not isinstance(data, dict):
        raise StatusUnavailable(f"{url} returned JSON that is not an object: is this a metalloid endpoint?")
    return data
