"""The `metalloid` command line: dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from types import ModuleType

# name -> module; the order is the order `metalloid --help` lists them in.
COMMANDS: dict[str, str] = {
    "demo": "supervisor.commands.demo",
    "check": "supervisor.commands.check",
    "plan": "supervisor.commands.plan",
    "run": "supervisor.commands.run",
    "status": "supervisor.commands.status",
    "explain": "supervisor.commands.explain",
    "controller": "supervisor.commands.controller",
    "speaker": "supervisor.commands.speaker",
    "preflight": "supervisor.commands.preflight",
}

DESCRIPTION = """\
metalloid gives LoadBalancer Services an IP from a pool and makes exactly one
healthy node answer for it on the LAN (ARP / IPv6 NDP), failing over in under a
second. It reads MetalLB's resources (IPAddressPool, L2Advertisement, the
metallb.io annotations) unchanged, in Kubernetes or from one YAML file.

Start here:
  metalloid demo                         a 3-node lab in private network namespaces (root)
  metalloid check examples/homelab.yaml  validate a config
  metalloid plan examples/homelab.yaml   which Service gets which IP, offline
"""


def _available(names: Iterable[str] = COMMANDS) -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for name in names:
        module = COMMANDS[name]
        try:
            found[name] = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return found


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser, or only `command`'s when it names one (then only its module is imported).

    The top level has no option of its own, so the first argument is the
    command or `-h`; a parse that names a command never reads another one's
    parser. Importing all of them cost `metalloid run` ~30 ms of CPU before its
    start-up check could begin (BENCHMARKS.md, issue 16's fourth session).
    """
    parser = argparse.ArgumentParser(
        prog="metalloid", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = _available([command]) if command in COMMANDS else {}
    # A command whose module is missing falls back to the whole list, which then refuses it as before.
    for name, module in (modules or _available()).items():
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    result: int = args._module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
