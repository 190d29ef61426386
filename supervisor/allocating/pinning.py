"""Pin assignments into a config file: `status.loadBalancer.ingress` on each Service.

`metalloid plan FILE --write-status` turns the file into a lock file for
GitOps users: every node that reads it keeps the same IPs, whatever its state
directory holds. The edit is line-oriented on purpose: a YAML round trip
through a parser would drop comments, reorder keys and reflow text. Only the
top-level `status:` block of each Service document is replaced (or appended
when missing); every other line stays byte for byte what it was.

The status is written the way `kubectl get -o yaml` prints it. A Service that
is pending gets `loadBalancer: {}` (what Kubernetes shows), which also clears a
stale pin. Services metalloid does not serve (not LoadBalancer, another
`loadBalancerClass`) are left alone. Pure text in, text out: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from supervisor.config.model import IPAddress, ServiceKey

_SEPARATOR = re.compile(r"^---(\s|$)")
_STATUS = re.compile(r"^status\s*:")


def _split_documents(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line slices of each document; separators stay outside them."""
    spans: list[tuple[int, int]] = []
    start = 0
    for number, line in enumerate(lines):
        if _SEPARATOR.match(line):
            spans.append((start, number))
            start = number + 1
    spans.append((start, len(lines)))
    return spans


def _service_key(text: str) -> ServiceKey | None:
    try:
        body: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(body, dict) or body.get("kind") != "Service" or body.get("apiVersion") != "v1":
        return None
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    return ServiceKey(namespace=namespace if isinstance(namespace, str) else "default", name=metadata["name"])


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def status_block(ips: tuple[IPAddress, ...], newline: str = "\n") -> list[str]:
    if not ips:
        return [f"status:{newline}", f"  loadBalancer: {{}}{newline}"]
    lines = [f"status:{newline}", f"  loadBalancer:{newline}", f"    ingress:{newline}"]
    lines += [f"    - ip: {ip}{newline}" for ip in ips]
    return lines


def _status_span(doc: list[str]) -> tuple[int, int] | None:
    """The lines of the top-level `status:` block: its key and everything indented under it."""
    for number, line in enumerate(doc):
        if _STATUS.match(line):
            end = number + 1
            while end < len(doc) and (not doc[end].strip() or doc[end][:1] in (" ", "\t")):
                end += 1
            while end > number + 1 and not doc[end - 1].strip():
                end -= 1  # blank lines after the block belong to what follows
            return number, end
    return None


def pin_status(text: str, pins: Mapping[ServiceKey, tuple[IPAddress, ...]]) -> tuple[str, list[ServiceKey]]:
    """`text` with the status of every Service in `pins` replaced; and which Services changed.

    `pins` maps each served Service to its IPs (empty for a pending one).
    """
    lines = text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    out: list[str] = []
    touched: list[ServiceKey] = []
    spans = _split_documents(lines)
    for number, (start, end) in enumerate(spans):
        doc = lines[start:end]
        key = _service_key("".join(doc))
        if key is not None and key in pins:
            doc = _replace_status(doc, status_block(pins[key], newline), newline)
            touched.append(key)
        out.extend(doc)
        if number + 1 < len(spans):
            out.append(lines[end])  # the `---` separator, as written
    return "".join(out), touched


def _replace_status(doc: list[str], block: list[str], newline: str) -> list[str]:
    span = _status_span(doc)
    if span is not None:
        return doc[: span[0]] + block + doc[span[1]:]
    last = max((i for i, line in enumerate(doc) if _is_content(line)), default=len(doc) - 1)
    head = doc[: last + 1]
    if head and not head[-1].endswith(("\n", "\r")):
        head[-1] += newline
    return head + block + doc[last + 1:]
