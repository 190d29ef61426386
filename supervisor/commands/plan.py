"""`metalloid plan FILE`: which Service gets which IP, computed offline from a config file.

No network, no root, no running node: load the file the way `check` does, run
the same pure allocator `metalloid run` runs, and print the answer. With
`--write-status` the assignments are pinned into the file as each Service's
`status.loadBalancer.ingress`, so every node reading it keeps those IPs.
Rendering is a pure function of the result, so tests need no files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from supervisor.allocating.results import AllocationResult
from supervisor.config import lbclass
from supervisor.serving.documents import counts_document, service_document

if TYPE_CHECKING:
    from collections.abc import Sequence

    from supervisor.config.diagnostics import Diagnostic
    from supervisor.config.model import Config

HELP = "show which Service gets which IP from which pool, offline (no cluster, no network)"
DESCRIPTION = """\
Reads a config file (IPAddressPools and LoadBalancer Services, as `kubectl
apply` takes them), allocates every Service exactly as a running metalloid
would, MetalLB's rules included (requested IPs, metallb.io/address-pool,
autoAssign, avoidBuggyIPs, serviceAllocation, IP sharing, dual stack), and
prints each Service's IP or why it is pending, then how full each pool is.
IPs a Service already holds (status.loadBalancer.ingress) are kept while valid.

  metalloid plan examples/homelab.yaml
  metalloid plan examples/homelab.yaml -o json
  metalloid plan examples/homelab.yaml --write-status   # pin the IPs into the file

--write-status rewrites only each Service's status block (comments and every
other line stay as written), so every node reading the file keeps the same
IPs: a lock file for GitOps.

The plan is always printed. An error about one Service (both
spec.loadBalancerIP and metallb.io/loadBalancerIPs, an unparsable IP…) makes
that Service pending with the reason, as a running node does; an error in a
pool or advertisement makes every Service pending, since a running node
refuses such a config as a whole and keeps its last good one. The installed
plugins' checks run as in `metalloid check` (--no-plugins skips them).

Exit status: 0 the plan was printed and the config has no errors, 1 the
config has errors (printed to stderr as `metalloid check` prints them; the
plan is printed all the same, and --write-status writes nothing), 2 a file
could not be read or written.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="YAML config files, read together as one config")
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table",
                        help="output format (default: table)")
    parser.add_argument("--write-status", action="store_true",
                        help="pin the assignments into the file(s) as status.loadBalancer.ingress")
    parser.add_argument("--lb-class", default=None, metavar="NAME",
                        help="serve Services of this spec.loadBalancerClass (default: Services without a class)")
    parser.add_argument("--no-plugins", action="store_true", help="skip the installed plugins' own checks")


def run(args: argparse.Namespace) -> int:
    # deferred: +4.0 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.allocating.allocator import allocate
    from supervisor.config.loading import load_config
    from supervisor.plugin_checks import load_failure_diagnostics, plugin_validators
    from supervisor.plugins_loader import PluginLoadFailure

    failures: list[PluginLoadFailure] = []
    validators = [] if args.no_plugins else plugin_validators(failures)
    try:
        loaded = load_config(args.files, validators=validators)
    except OSError as exc:
        print(f"metalloid plan: cannot read {exc.filename or '?'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    diagnostics = [*loaded.diagnostics, *load_failure_diagnostics(failures, as_errors=True)]
    # A plugin that cannot load leaves its checks unrun: the config counts as rejected, as in `check`.
    rejected = loaded.rejected or bool(failures)
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr)
    config = loaded.config
    result = rejected_plan(config, diagnostics, args.lb_class) if rejected else allocate(
        config, lb_class=args.lb_class)
    for note in result.warnings:
        print(f"warning: {note}", file=sys.stderr)
    sys.stdout.write(render(result, args.output))
    errors = sum(1 for d in diagnostics if d.is_error)
    if errors:
        print(f"metalloid plan: {errors} error{'s' if errors != 1 else ''} in the config (above, as `metalloid "
              "check` prints them); the Services they concern are pending", file=sys.stderr)
        return 1
    if args.write_status:
        return _write_status(args.files, config, result, args.lb_class)
    return 0


def rejected_plan(config: Config, diagnostics: Sequence[Diagnostic], lb_class: str | None) -> AllocationResult:
    """The plan of a config with config-level errors: nothing is served from it.

    A running metalloid refuses such a config as a whole (as MetalLB does):
    it keeps serving its last good config, or, without one, serves nothing.
    So every Service is pending, naming the first error; pools are counted
    as they parsed.
    """
    # deferred: +1.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.allocating.allocator import allocate
    from supervisor.config.isolation import config_errors

    errors = config_errors(diagnostics)
    first = errors[0]
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    reason = (f"the config is rejected ({first.kind}/{first.name} at {first.source}: {first.message}{more}); a "
              "running metalloid keeps its last good config and serves nothing from this one until it is fixed")
    counts = allocate(replace(config, services=()), lb_class=lb_class).pools
    keys = sorted({s.key for s in config.services if lbclass.is_ours(s, lb_class)})
    return AllocationResult(assignments={}, pending=dict.fromkeys(keys, reason), pools=counts)


def _write_status(files: list[str], config: Config, result: AllocationResult, lb_class: str | None) -> int:
    # deferred: +0.8 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.allocating.pinning import pin_status

    pins = {s.key: result.ips_of(s.key) for s in config.services if lbclass.is_ours(s, lb_class)}
    for path in files:
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                text = handle.read()
            new_text, touched = pin_status(text, pins)
            if new_text != text:
                # Atomic replace, keeping the file's mode: a crash leaves the old or the new file.
                directory = os.path.dirname(os.path.abspath(path))
                fd, temp = tempfile.mkstemp(dir=directory, prefix=".metalloid-plan-")
                try:
                    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                        out.write(new_text)
                        out.flush()
                        os.fsync(out.fileno())
                    os.chmod(temp, os.stat(path).st_mode & 0o7777)
                    os.replace(temp, path)
                except BaseException:
                    os.unlink(temp)
                    raise
        except OSError as exc:
            print(f"metalloid plan: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"{path}: pinned the status of {len(touched)} Service{'s' if len(touched) != 1 else ''}",
              file=sys.stderr)
    return 0


def as_document(result: AllocationResult) -> dict[str, Any]:
    """The JSON/YAML shape of DESIGN.md: services (sorted by namespace/name), then pools."""
    services = [service_document(result, key) for key in sorted([*result.assignments, *result.pending])]
    pools = [{"name": c.pool, **counts_document(c)} for c in result.pools]
    return {"services": services, "pools": pools}


def render(result: AllocationResult, output: str = "table") -> str:
    document = as_document(result)
    if output == "json":
        return json.dumps(document, indent=2) + "\n"
    if output == "yaml":
        # deferred: +0.7 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
        import yaml

        return str(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    return _table(document)


def _columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows aligned the way `kubectl get` aligns them: three spaces between columns."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]


def _state(service: dict[str, Any]) -> str:
    if service["pending"] is not None:
        return f"Pending: {service['pending']}"
    if service.get("problem"):
        return f"Assigned (kept; the spec is invalid: {service['problem']})"
    return "Assigned"


def _table(document: dict[str, Any]) -> str:
    services = [
        [s["namespace"], s["name"], ",".join(s["ips"]) or "<pending>", s["pool"] or "<none>",
         _state(s)]
        for s in document["services"]
    ]
    lines = (_columns(["NAMESPACE", "NAME", "EXTERNAL-IP", "POOL", "STATUS"], services)
             if services else ["No LoadBalancer Services in the config."])
    pools = [
        [p["name"], *(str(p[f"{what}_v{family}"]) for family in (4, 6) for what in ("total", "assigned", "available"))]
        for p in document["pools"]
    ]
    lines.append("")
    if pools:
        lines += _columns(["POOL", "V4-TOTAL", "V4-ASSIGNED", "V4-AVAILABLE", "V6-TOTAL", "V6-ASSIGNED",
                           "V6-AVAILABLE"], pools)
    else:
        lines.append("No IPAddressPools in the config.")
    return "\n".join(lines) + "\n"
