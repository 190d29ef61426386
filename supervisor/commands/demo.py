"""`metalloid demo`: run the homelab example on a private 3-node lab and fail a node."""

from __future__ import annotations

import argparse

HELP = "run the homelab example on a private 3-node lab (network namespaces) and fail the owner"
DESCRIPTION = """\
Builds a private lab of network namespaces (a bridge, nodes n1 n2 n3, a client;
addresses only inside those namespaces, nothing on your real interfaces), runs
`metalloid run` with examples/homelab.yaml on the three nodes, and shows:
  - the assignments and pool counts,
  - the client resolving 10.0.10.10 to the owner's MAC and reaching a service behind it,
  - the owner's power cut and the outage the client measured until another node answered,
  - why pi-hole stays pending.
Then it removes the lab (also on Ctrl-C or failure) unless --keep.

Needs root (network namespaces) and iproute2. Without root, try:
  metalloid plan examples/homelab.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", action="store_true", help="leave the lab up and print commands to explore it")
    parser.add_argument("--json", action="store_true", help="print the observed result as JSON at the end")
    parser.add_argument("--prefix", default="mld", help="namespace name prefix (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    # deferred: +1.0 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.lab.demo import result_json, run_demo, summary
    from supervisor.lab.netns import require_root

    problem = require_root()
    if problem:
        print(f"metalloid demo: {problem}.")
        print("Without root you can still see what metalloid would do, offline:")
        print("  metalloid plan examples/homelab.yaml")
        print("  metalloid explain pihole/pi-hole --config examples/homelab.yaml")
        return 2
    try:
        result = run_demo(keep=args.keep, prefix=args.prefix, say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        return 130
    print(summary(result))
    if args.json:
        print(result_json(result))
    return 0 if result.ok else 1
