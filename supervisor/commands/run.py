"""`metalloid run`: the standalone node (watcher(file) + allocator + membership + announcers)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from supervisor.config.model import Config
from supervisor.logs import add_logging_arguments, setup_logging
from supervisor.serving.options import add_http_arguments

if TYPE_CHECKING:
    from supervisor.announcing.enabling import Decision
    from supervisor.supervising.settings import AnnouncerSettings
    from supervisor.supervising.supervisor import WorkerSpec

HELP = "run a standalone node from a config file: allocate, announce, fail over"
DESCRIPTION = """\
Run this node of a standalone (no Kubernetes) metalloid cluster. Every node runs
the same config file; each allocates the same IPs (deterministically, and kept
across restarts in --state-dir) and the nodes elect, per IP, the one that
answers ARP/NDP for it.

Processes: a supervisor spawns a config watcher, the allocator, the membership
worker (once the config lists other Nodes, also after a reload) and one announcer process per
enabled protocol, restarts any that dies or hangs, and serves /metrics, /healthz,
/readyz and /status on --metrics-port.

Announcers: --announcers LIST runs exactly those. Without it, the config
decides, again on every reload: every AnnouncerConfig with spec.enabled: true
(the default), plus layer2 when the config has L2Advertisements and bgp when
it has BGPPeers unless an AnnouncerConfig disables them. Installing a plugin
starts nothing by itself. `metalloid status` shows which run and why. SIGHUP reloads the config now (it is
also reloaded when the file changes); SIGTERM hands the IPs over and exits 0.

An invalid config (a pool, an advertisement, the YAML) is refused as a whole,
as MetalLB refuses one: a reload keeps the last good config (marked stale), and
at start the node runs without one, serving nothing and not ready, until the
file is fixed. An error about one Service only leaves that Service pending.

Every option can also come from the environment: METALLOID_CONFIG (comma-separated),
METALLOID_NODE, METALLOID_STATE_DIR, METALLOID_METRICS_PORT, METALLOID_METRICS_HOST,
METALLOID_MEMBERSHIP_KEY_FILE, METALLOID_ANNOUNCERS.

Exit codes: 0 stopped by SIGTERM/SIGINT; 1 bad config, state file or flags at start;
3 a core worker (watcher, allocator, membership) kept failing (restart budget spent;
systemd or the kubelet takes over). An announcer that keeps failing is FAILED
instead (/status, /readyz, metalloid_announcer_failed) and the others keep announcing.
4 the supervisor itself failed (a bug, or the host ran out of a resource; the log says which).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--config", action="append", metavar="FILE",
                        help="config file (repeatable; env METALLOID_CONFIG)")
    parser.add_argument("--node", default=env("METALLOID_NODE"),
                        help="this node's name, one of the config's Nodes (env METALLOID_NODE)")
    parser.add_argument("--state-dir", default=env("METALLOID_STATE_DIR", "/var/lib/metalloid"),
                        help="where assignments persist (default: /var/lib/metalloid)")
    add_http_arguments(parser)
    parser.add_argument("--membership-key-file", default=env("METALLOID_MEMBERSHIP_KEY_FILE"),
                        help="shared secret authenticating membership heartbeats (same file on every node)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow membership without a key (trusted networks only)")
    parser.add_argument("--announcers", default=env("METALLOID_ANNOUNCERS"), metavar="LIST",
                        help="comma-separated announcer protocols to run, overriding the config (default: the "
                             "config's AnnouncerConfigs, plus layer2 with L2Advertisements and bgp with BGPPeers)")
    parser.add_argument("--grace-period", type=float, default=5.0, metavar="SECONDS",
                        help="how long SIGTERM waits for workers to hand over and exit (default: 5)")
    parser.add_argument("--restart-budget", type=int, default=10, metavar="N",
                        help="restarts allowed per worker within --restart-window before metalloid gives up: "
                             "exits 3 for a core worker, marks an announcer FAILED (default: 10)")
    parser.add_argument("--restart-window", type=float, default=60.0, metavar="SECONDS",
                        help="the restart budget's time window (default: 60)")
    parser.add_argument("--hung-timeout", type=float, default=3.0, metavar="SECONDS",
                        help="a worker silent (no heartbeat) this long is killed and restarted (default: 3; "
                             "an AnnouncerConfig's spec.hangTimeoutSeconds overrides it for that announcer)")
    add_logging_arguments(parser)


def _fail(message: str) -> int:
    print(f"metalloid run: {message}", file=sys.stderr)
    return 1


def _version() -> str:
    # deferred: +0.5 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    import importlib.metadata

    try:
        return importlib.metadata.version("metalloid")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        return "0+unknown"


def supervisor_version() -> str:
    """Our version for a supervisor: read in a forked child, so importlib.metadata stays out of it."""
    # deferred: +0.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.supervising.memory import in_forked_child

    return in_forked_child(_version)  # +0.5 MiB PSS for good in the supervisor otherwise (2026-12-06)


def select_announcers(config: Config | None, requested: str | None) -> tuple[tuple[Decision, ...], str | None]:
    """Which announcers run and why (`enabling.decide`), or an error message for an unknown --announcers name."""
    # deferred: +2.0 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    import importlib.metadata

    from supervisor.announcing.enabling import decide, parse_list

    # The names alone: hookspecs and plugins_loader import pluggy and the plugin API (~25-30 ms of CPU).
    from supervisor.plugin_names import ENTRY_POINT_GROUP, EXTRA_PLUGINS_ENV

    installed = sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})
    names = parse_list(requested)
    # Entry-point names are the protocol names by convention (layer2, bgp, ...).
    unknown = [n for n in names or () if n not in installed]
    if unknown and not os.environ.get(EXTRA_PLUGINS_ENV):
        return (), (f"--announcers: no installed plugin named {', '.join(unknown)} "
                    f"(installed: {', '.join(installed) or 'none'}); install it or fix the list")
    return decide(config, names), None


def _common(args: argparse.Namespace) -> dict[str, Any]:
    """The `WorkerSettings` fields every worker of this node shares; each role's settings add their own."""
    return {"node_name": args.node, "log_format": args.log_format, "log_level": args.log_level}


def announcer_template(args: argparse.Namespace) -> AnnouncerSettings:
    """The settings every announcer of this node is made from (name and protocol filled in per announcer)."""
    # deferred: +0.2 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.supervising.settings import AnnouncerSettings

    return AnnouncerSettings(name="announcer", **_common(args), state_dir=args.state_dir)


def build_specs(args: argparse.Namespace, config: Config, decisions: tuple[Decision, ...],
                parsed: bytes = b"") -> list[WorkerSpec]:
    """The workers to start (of `config`, only the Nodes and AnnouncerConfigs are read); `parsed`: the
    start-up check's parse of the files, for the watcher's first load."""
    # deferred: +4.7 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-07)
    from supervisor.announcing.enabling import enabled
    from supervisor.messages import ParsedAtStart
    from supervisor.supervising.settings import AllocatorSettings, MembershipSettings, WatcherSettings
    from supervisor.supervising.specs import FirstMessage, WorkerSpec, announcer_spec
    from supervisor.supervising.state import ALLOCATOR, MEMBERSHIP, WATCHER

    # The watcher's first load adopts the check's parse (a restarted one gets
    # an empty one and reads the files from nothing): 1,000 Services parse in
    # ~0.2 s of CPU, the check's copy is read in ~0.03 s (BENCHMARKS.md).
    watcher = WatcherSettings(name="watcher", **_common(args), config_paths=tuple(args.config), parsed_at_start=True)
    specs = [
        WorkerSpec(name="watcher", role=WATCHER, entry="supervisor.watching.file_watcher:run", settings=watcher,
                   first_message=FirstMessage(ParsedAtStart(documents=parsed), after=ParsedAtStart())),
        WorkerSpec(name="allocator", role=ALLOCATOR, entry="supervisor.allocating.worker:run",
                   settings=AllocatorSettings(name="allocator", **_common(args), state_dir=args.state_dir)),
    ]
    # Membership only matters with peers (alone, the live members are this node).
    # When the file lists one already, it starts with the others, so its process
    # start and its start window overlap the watcher's load instead of following
    # it (its detector, and the startup grace, begin with the first config it
    # receives, as before). Otherwise the supervisor starts it once a config, on
    # a reload, lists one.
    membership = MembershipSettings(name="membership", **_common(args),
                                    membership_key_file=args.membership_key_file, insecure=args.insecure)
    peers = any(node.name != args.node for node in config.nodes)
    specs.append(WorkerSpec(name="membership", role=MEMBERSHIP, entry="supervisor.membership.worker:run",
                            settings=membership, needs_peers=not peers))
    template = announcer_template(args)
    specs.extend(announcer_spec(template, config, protocol) for protocol in enabled(decisions))
    return specs


def _preflight(args: argparse.Namespace) -> tuple[Config | None, str | None, bytes]:
    """Load the config and check the state file and key once, before any process starts.

    The third value is the parse, for the watcher to adopt (`DocumentReuse.export`).
    """
    # deferred: +5.8 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.allocating import statefile
    from supervisor.config.reusing import DocumentReuse
    from supervisor.membership.keys import KeyFileError, key_problem, read_key_file
    from supervisor.watching.loader import default_loader

    # Without the plugins' validators: the watcher runs them (a config they
    # reject leaves the node running, not ready, with the errors in /status).
    reuse = DocumentReuse()
    config, diagnostics = default_loader(args.node, plugins=False, reuse=reuse)(args.config)
    for d in diagnostics:
        print(d, file=sys.stderr)
    if config is None:
        # As MetalLB without a valid configuration: run, serve nothing, wait
        # for a valid one (the watcher reloads the file when it changes).
        # /readyz says why it is not ready, /status lists the errors.
        errors = sum(d.is_error for d in diagnostics)
        print(f"metalloid run: the config is not valid ({errors} error(s) above; `metalloid check "
              f"{' '.join(args.config)}` shows the same): starting anyway, serving nothing until the file is "
              "fixed", file=sys.stderr)
        config = _parsed_part(args.config)
    try:
        statefile.check_writable(args.state_dir)
        statefile.load(args.state_dir)
    except statefile.StateFileError as exc:
        return None, str(exc), b""
    try:
        # The command line wins; Settings spec.membership.keyFile is the fallback (as in the worker).
        key_file = args.membership_key_file or config.settings.membership.key_file
        key = read_key_file(key_file) if key_file else None
    except KeyFileError as exc:
        return None, str(exc), b""
    problem = key_problem(config, node_name=args.node, key=key, insecure=args.insecure)
    if problem:
        return None, problem, b""
    return config, None, reuse.export()


def _parsed_part(paths: list[str]) -> Config:
    """The objects of an invalid config that did parse: which announcers to start and the key check go by them.

    Nothing is served from them (the watcher sends no ConfigLoaded for an
    invalid file); they only let the node start the processes the fixed file
    will most likely need.
    """
    # deferred: +3.1 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.config.loading import load_config

    try:
        return load_config(paths).config
    except OSError:
        return Config()


def run(args: argparse.Namespace) -> int:
    if not args.config and os.environ.get("METALLOID_CONFIG"):
        args.config = [p for p in os.environ["METALLOID_CONFIG"].split(",") if p]
    if not args.config:
        return _fail("--config FILE is required (or set METALLOID_CONFIG)")
    if not args.node:
        return _fail("--node NAME is required (or set METALLOID_NODE): this node's name among the config's Nodes")
    try:
        setup_logging("supervisor", fmt=args.log_format, level=args.log_level)
    except ValueError as exc:
        return _fail(str(exc))
    args.config = [os.path.abspath(p) for p in args.config]
    args.state_dir = os.path.abspath(args.state_dir)
    from supervisor.supervising.forkserver import start_forkserver, stop_forkserver

    # First the forkserver (an interpreter and its preload, ~90 ms of CPU),
    # which the first spawn waits for: it starts on the other core while this
    # process forks the check and imports its own modules (BENCHMARKS.md,
    # start → ready). It is stopped again if the check fails.
    start_forkserver()
    try:
        prepared = _checked(args)
    except BaseException:
        stop_forkserver()
        raise
    if isinstance(prepared, str):
        stop_forkserver()
        return _fail(prepared)
    nodes_and_announcers, decisions, version, parsed = prepared
    # Here, not in the check: the modules the specs are made of are the
    # supervisor's own, imported above while the check ran.
    specs = build_specs(args, nodes_and_announcers, decisions, parsed)
    # From here only the watcher's first message holds the parse, until its
    # first spawn takes it (specs.FirstMessage): this frame lives as long as the node.
    del prepared, parsed
    return _serve(args, specs, decisions, version)


def _checked(args: argparse.Namespace) -> tuple[Config, tuple[Decision, ...], str, bytes] | str:
    """`_prepare`'s answer, computed in a forked child while this process imports what it runs with."""
    # deferred: +0.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.supervising.memory import ForkedJob

    # In a child that exits afterwards: the parser, PyYAML and the key checks
    # it imports, and the start-up copy of the config (the watcher sends it
    # again at once), would otherwise stay in the supervisor for the whole run.
    check = ForkedJob(lambda: _prepare(args))
    # Meanwhile: this process's own imports (the HTTP server, prometheus_client,
    # the supervisor's parts).
    # deferred: +5.2 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    import supervisor.supervising.serving  # noqa: F401  (what _serve imports)

    return check.result()


def _prepare(args: argparse.Namespace) -> tuple[Config, tuple[Decision, ...], str, bytes] | str:
    """What `build_specs` reads of the config (its Nodes and AnnouncerConfigs), the announcer decisions,
    our version and the parse for the watcher (`DocumentReuse.export`), or why the node cannot start.

    The version is here too: importlib.metadata, which reads it, costs the
    supervisor 0.4 MiB PSS for good (bench/runtime.py, 2026-12-06).
    """
    config, problem, parsed = _preflight(args)
    if config is None:
        return problem or "cannot start"
    decisions, problem = select_announcers(config, args.announcers)
    if problem:
        return problem
    return Config(nodes=config.nodes, announcers=config.announcers), decisions, _version(), parsed


def _serve(args: argparse.Namespace, specs: list[WorkerSpec], decisions: tuple[Decision, ...], version: str) -> int:
    # deferred: +5.2 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.announcing.enabling import parse_list
    from supervisor.supervising.backoff import BackoffSettings
    from supervisor.supervising.serving import serve_supervisor
    from supervisor.supervising.supervisor import SupervisorSettings

    settings = SupervisorSettings(
        node_name=args.node, version=version, grace_seconds=args.grace_period, hung_seconds=args.hung_timeout,
        backoff=BackoffSettings(budget=args.restart_budget, window_seconds=args.restart_window),
        announcer_template=announcer_template(args), requested_announcers=parse_list(args.announcers),
    )
    return serve_supervisor("run", specs, settings, args=args, decisions=decisions)
