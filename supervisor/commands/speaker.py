"""`metalloid speaker`: the Kubernetes DaemonSet (watch, membership, announce)."""

from __future__ import annotations

import argparse
import os
import sys

from supervisor.commands.run import supervisor_version
from supervisor.logs import add_logging_arguments, setup_logging
from supervisor.roles import Mode
from supervisor.serving.options import add_http_arguments

HELP = "Kubernetes speaker: announce the Services' IPs from this node (MetalLB's speaker)"
DESCRIPTION = """\
Run metalloid's speaker on one node (a DaemonSet with hostNetwork and NET_RAW),
in place of MetalLB's. It reads the assignments the controller wrote in Service
status, finds its peers from the speaker pods (labels app=metalloid,
component=speaker in --namespace), exchanges heartbeats with them, and answers
ARP/NDP for the IPs this node wins (MetalLB's election). When the API server is
unreachable it keeps announcing the last known state.

Announcers: --announcers LIST runs exactly those; without it the config decides
(AnnouncerConfig objects in --namespace, plus layer2 when L2Advertisements exist
and bgp when BGPPeers do), again on every change. An announcer that keeps
failing is FAILED (a Warning Event on this Node, /readyz 503) while the others
keep announcing.

The node name comes from --node, $NODE_NAME (downward API) or $METALLOID_NODE.
Credentials: the pod's service account, else --kubeconfig.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--node", default=env("NODE_NAME") or env("METALLOID_NODE"),
                        help="this node's name (env NODE_NAME from the downward API, or METALLOID_NODE)")
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"), metavar="PATH",
                        help="kubeconfig file (default: in-cluster service account, else ~/.kube/config)")
    parser.add_argument("--namespace", default=env("METALLOID_NAMESPACE") or env("POD_NAMESPACE") or "metallb-system",
                        help="where the metallb.io resources and the speaker pods live (default: metallb-system)")
    parser.add_argument("--membership-key-file", default=env("METALLOID_MEMBERSHIP_KEY_FILE",
                                                              "/etc/metalloid/memberlist/secretkey"),
                        help="shared secret authenticating heartbeats (default: /etc/metalloid/memberlist/secretkey)")
    parser.add_argument("--insecure", action="store_true", help="allow membership without a key (trusted networks)")
    add_http_arguments(parser)
    parser.add_argument("--announcers", default=env("METALLOID_ANNOUNCERS"), metavar="LIST",
                        help="comma-separated announcer protocols, overriding the config (default: the "
                             "AnnouncerConfigs, plus layer2 with L2Advertisements and bgp with BGPPeers)")
    parser.add_argument("--state-dir", default=env("METALLOID_STATE_DIR", "/tmp/metalloid"),
                        help="where announcers remember what they announced, for the cleanup after a kill "
                             "(default: /tmp/metalloid, an emptyDir in the pod that outlives container restarts)")
    parser.add_argument("--api-server", default=env("METALLOID_API_SERVER"), metavar="URL", help=argparse.SUPPRESS)
    add_logging_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # deferred: +5.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.announcing.enabling import parse_list
    from supervisor.supervising.serving import serve_supervisor
    from supervisor.supervising.settings import AnnouncerSettings, MembershipSettings, SpeakerSettings, WorkerSettings
    from supervisor.supervising.state import ALLOCATOR, MEMBERSHIP, WATCHER
    from supervisor.supervising.supervisor import SupervisorSettings, WorkerSpec, announcer_spec

    if not args.node:
        print("metalloid speaker: --node is required (or NODE_NAME from the downward API)", file=sys.stderr)
        return 1
    try:
        setup_logging("supervisor", fmt=args.log_format, level=args.log_level)
    except ValueError as exc:
        print(f"metalloid speaker: {exc}", file=sys.stderr)
        return 1
    wanted = args.membership_key_file
    key_file = wanted if wanted and os.path.exists(wanted) else None
    if key_file is None and not args.insecure:
        print(f"metalloid speaker: membership key file {args.membership_key_file} not found; mount the "
              "memberlist Secret there or pass --insecure on a trusted network", file=sys.stderr)
        return 1

    common = {"node_name": args.node, "mode": Mode.KUBERNETES, "log_format": args.log_format,
              "log_level": args.log_level}
    specs = [
        WorkerSpec(name="watcher", role=WATCHER, entry="supervisor.kubernetes.worker:run",
                   settings=SpeakerSettings(name="watcher", **common, kubeconfig=args.kubeconfig,
                                            api_host=args.api_server, namespace=args.namespace)),
        WorkerSpec(name="allocator", role=ALLOCATOR, entry="supervisor.kubernetes.status_allocator:run",
                   settings=WorkerSettings(name="allocator", **common)),
        WorkerSpec(name="membership", role=MEMBERSHIP, entry="supervisor.membership.worker:run",
                   settings=MembershipSettings(name="membership", **common, membership_key_file=key_file,
                                               insecure=args.insecure)),
    ]
    # With --announcers they start at once; otherwise with the first config from the API.
    requested = parse_list(args.announcers)
    problem = _unknown_announcers(args.announcers) if requested else None
    if problem:
        print(f"metalloid speaker: {problem}", file=sys.stderr)
        return 1
    template = AnnouncerSettings(name="announcer", **common, state_dir=args.state_dir, kubeconfig=args.kubeconfig,
                                 api_host=args.api_server)
    specs.extend(announcer_spec(template, None, protocol) for protocol in requested or ())
    return serve_supervisor("speaker", specs,
                            SupervisorSettings(node_name=args.node, mode=Mode.KUBERNETES, version=supervisor_version(),
                                               announcer_template=template, requested_announcers=requested,
                                               pool_metrics=False),
                            args=args)


def _unknown_announcers(requested: str) -> str | None:
    """Why --announcers cannot be run (a name no installed plugin has), as `metalloid run` refuses it; or None."""
    # deferred: importlib.metadata, read in a forked child as `run` does, so it stays out of the supervisor
    from supervisor.commands.run import select_announcers
    from supervisor.supervising.memory import in_forked_child

    return in_forked_child(lambda: select_announcers(None, requested)[1])
