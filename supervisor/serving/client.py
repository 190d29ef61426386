"""Reading a node's /status from the command line (`metalloid status`, `metalloid explain`).

Stdlib only, so the commands start fast. Every failure becomes one
`StatusUnavailable` whose message names the URL and what to check.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

DEFAULT_ENDPOINT = "http://127.0.0.1:7472"


class StatusUnavailable(Exception):
    """/status could not be read; the message says why and what to check."""


def status_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if "://" not in base:
        base = "http://" + base
    return base if base.endswith("/status") else base + "/status"


def fetch_status(endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = 5.0) -> dict[str, Any]:
    url = status_url(endpoint)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise StatusUnavailable(
            f"{url} answered HTTP {exc.code}: is this a metalloid endpoint (metalloid run, controller or speaker)?"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
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
