"""`metalloid check FILE...`: validate config files, print every problem, set the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.announcing.api import AnnouncerRegistry
    from supervisor.config.diagnostics import Diagnostic
    from supervisor.config.model import Config
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


def plugin_validators(failures: list[PluginLoadFailure] | None = None) -> list[Callable[[Config], list[Diagnostic]]]:
    """One validator calling every installed plugin's `metalloid_validate_config` hook."""
    from supervisor.announcing.api import AnnouncerRegistry
    from supervisor.plugins_loader import build_plugin_manager

    pm = build_plugin_manager(failures=failures)
    registry = AnnouncerRegistry()
    try:
        pm.hook.metalloid_register_announcers(registry=registry)
        registry_error = None
    except Exception as exc:  # two plugins claiming one protocol, a bug in a registration hook
        registry_error = f"{type(exc).__name__}: {exc}"
    broken = {f.name: f for f in failures or []}

    def run_hooks(config: Config) -> list[Diagnostic]:
        from supervisor.config.diagnostics import error
        from supervisor.config.model import API_SOURCE

        found = [*_unregistered(config, registry, broken)] if registry_error is None else [
            error(API_SOURCE, "Plugin", "register", f"metalloid_register_announcers failed: {registry_error}")]
        if not pm.get_plugins():
            return found
        try:
            results: list[list[Diagnostic]] = pm.hook.metalloid_validate_config(config=config)
        except Exception as exc:  # a plugin's bug must not hide the rest of the report
            return [*found, error(API_SOURCE, "Plugin", "validate",
                                  f"a plugin's metalloid_validate_config raised {type(exc).__name__}: {exc}; "
                                  "report it to the plugin's authors, or run with --no-plugins")]
        return [*found, *(d for result in results for d in (result or []))]

    return [run_hooks]


def _unregistered(config: Config, registry: AnnouncerRegistry,
                  broken: dict[str, PluginLoadFailure]) -> list[Diagnostic]:
    """An AnnouncerConfig for a protocol no loaded plugin registers: a typo, or a plugin not installed."""
    import difflib

    from supervisor.config.diagnostics import error

    found = []
    for announcer in config.announcers:
        if registry.get(announcer.name) is not None:
            continue
        if announcer.name in broken:
            why = f"its plugin failed to load: {broken[announcer.name].reason}"
        else:
            close = difflib.get_close_matches(announcer.name, registry.names(), n=1)
            why = (f"did you mean {close[0]}?" if close else
                   f"registered: {', '.join(registry.names()) or 'none'}; install its plugin")
        found.append(error(announcer.source, "AnnouncerConfig", announcer.name,
                           f"no installed plugin registers announcer protocol {announcer.name!r}; {why}"))
    return found


def load_failure_diagnostics(failures: list[PluginLoadFailure], *, as_errors: bool) -> list[Diagnostic]:
    """A plugin that failed to load, as a diagnostic naming the plugin and the hook at fault."""
    from supervisor.config.diagnostics import error, warning
    from supervisor.config.model import Source

    make = error if as_errors else warning
    return [make(Source(file="<plugins>", line=0), "Plugin", f.name,
                 f"{f}" + (f" (hook {f.hook})" if f.hook else "") + "; fix or uninstall the plugin")
            for f in failures]


def run(args: argparse.Namespace) -> int:
    from supervisor.config.diagnostics import Severity
    from supervisor.config.loading import load_config_files

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
