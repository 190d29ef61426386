"""`metalloid check FILE...`: validate config files, print every problem, set the exit code."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.plugins_loader import PluginLoadFailure

HELP = "validate config files (MetalLB resources, Services, Nodes) and explain every problem"
DESCRIPTION = """\
Reads one or more multi-document YAML files of Kubernetes-shaped objects
(IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement, BFDProfile,
Community, Service, Node, EndpointSlice, Namespace, metalloid's Settings), as
`kubectl apply` takes them, and checks them the way MetalLB's webhooks do, and
more: malformed or overlapping addresses, duplicate names, wrong field types,
bad selectors, Services asking for IPs no pool has, pools nothing announces,
fields of MetalLB's API that metalloid keeps but does not act on.

Every problem is printed as
  FILE:LINE: Kind/name: what is wrong and how to fix it
Warnings (prefixed "warning:") are things that load but probably do not do
what you want; they do not fail the check. Installed plugins (layer2, bgp, ...)
add their own checks, of their AnnouncerConfig's spec.settings too; a plugin
that fails to load (an import error, an unknown or misspelled hook, a plugin
API this metalloid does not provide) and an AnnouncerConfig naming a protocol
no installed plugin registers are errors.

Exit status: 0 valid (warnings allowed), 1 errors found, 2 a file could not be read.

Example:
  metalloid check examples/homelab.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML files to check together, as one config")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only, not warnings")
    parser.add_argument("--no-plugins", action="store_true", help="skip the installed plugins' own checks")


def run(args: argparse.Namespace) -> int:
    # deferred: +3.8 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.config.diagnostics import Severity
    from supervisor.config.loading import load_config_files
    from supervisor.plugin_checks import load_failure_diagnostics, plugin_validators

    failures: list[PluginLoadFailure] = []
    validators = [] if args.no_plugins else plugin_validators(failures)
    try:
        _, diagnostics = load_config_files(args.files, validators=validators)
    except OSError as exc:
        name = exc.filename if exc.filename is not None else "?"
        print(f"metalloid check: cannot read {name}: {exc.strerror or exc}")
        return 2
    diagnostics = diagnostics + load_failure_diagnostics(failures, as_errors=True)
    order = {path: i for i, path in enumerate(args.files)}
    diagnostics.sort(key=lambda d: (order.get(d.source.file, len(order)), d.source.line))
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = len(diagnostics) - errors
    for diagnostic in diagnostics:
        if diagnostic.is_error or not args.quiet:
            print(diagnostic)
    files = f"{len(args.files)} file{'s' if len(args.files) != 1 else ''}"
    counts = f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    if errors:
        print(f"{files} checked: {counts}; fix the errors above")
        return 1
    print(f"{files} checked: OK ({counts})")
    return 0
