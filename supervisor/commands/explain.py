"""`metalloid explain NAMESPACE/NAME`: why a Service has its IP (or none) and who announces it.

Asks a running node's /status, or with `--config FILE` computes the same
document offline (allocator + MetalLB's election, every Node alive), and
explains one Service in words (`supervisor.serving.explaining`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from supervisor.serving.client import StatusUnavailable, add_client_arguments, client_token, fetch_status, status_url

HELP = "explain why a Service has its IP or is pending, and which node announces it and why"
DESCRIPTION = """\
Explain one LoadBalancer Service: why it has its IP (the pool, whether it asked
for it), why it is pending (the allocator's reason and how to fix it), which
node announces it and why that node (MetalLB's ranking, and why other nodes are
not candidates), or why nobody announces it (for example: no L2Advertisement
covers its pool).

  metalloid explain pihole/pi-hole                             ask the local node
  metalloid explain pihole/pi-hole --endpoint http://10.0.10.2:7472
  metalloid explain pihole/pi-hole --config examples/homelab.yaml   offline
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", metavar="NAMESPACE/NAME", help="the Service (NAME alone means default/NAME)")
    add_client_arguments(parser)
    parser.add_argument("--config", action="append", metavar="FILE",
                        help="explain offline from this config file (repeatable) instead of asking a node")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text",
                        help="output format (default: text)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the node (default: 5)")


def run(args: argparse.Namespace) -> int:
    # deferred: +1.1 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.serving.explaining import explain, find_service, render_text

    if args.config:
        loaded = _offline(args.config)
        if loaded is None:
            return 1
        status, source, note = loaded
        where = f"the file {', '.join(args.config)}"
    else:
        try:
            status = fetch_status(args.endpoint, timeout=args.timeout, token=client_token(args.auth_token_file),
                                  verify=not args.insecure_skip_tls_verify)
        except StatusUnavailable as exc:
            print(f"metalloid explain: {exc}\n(or explain offline: --config FILE)", file=sys.stderr)
            return 1
        node = status.get("node", "?")
        source = f"as seen by node {node} at {status_url(args.endpoint)}"
        where = f"node {node}"
        note = None
    service, close = find_service(status, args.service)
    if service is None:
        message = f"metalloid explain: no LoadBalancer Service {args.service} in {where}."
        if close:
            message += f" Did you mean: {', '.join(close)}?"
        print(message, file=sys.stderr)
        return 1
    explanation = explain(status, service, source=source, note=note)
    if args.output == "json":
        print(json.dumps(explanation, indent=2))
    else:
        sys.stdout.write(render_text(explanation))
    return 0


def _offline(paths: list[str]) -> tuple[dict[str, Any], str, str] | None:
    # deferred: +3.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.allocating.allocator import allocate
    from supervisor.config.loading import load_config_files
    from supervisor.serving.snapshot import offline_status

    try:
        config, diagnostics = load_config_files(paths)
    except OSError as exc:
        print(f"metalloid explain: cannot read {exc.filename or paths[0]}: {exc.strerror or exc}", file=sys.stderr)
        return None
    if config is None:
        for diagnostic in diagnostics:
            print(diagnostic, file=sys.stderr)
        print(f"metalloid explain: {', '.join(paths)} is not valid (see `metalloid check`)", file=sys.stderr)
        return None
    status = offline_status(config, allocate(config), origin=", ".join(paths))
    source = f"computed offline from {', '.join(paths)}"
    note = ("offline, every Node in the file is considered alive (there is no membership to ask), so a running "
            "cluster may differ; ask a node with --endpoint")
    return status, source, note
