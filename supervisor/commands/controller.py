"""`metalloid controller`: the Kubernetes Deployment (watch, allocate, write status, lease)."""

from __future__ import annotations

import argparse
import os
import sys

from supervisor.commands.run import supervisor_version
from supervisor.logs import add_logging_arguments, setup_logging
from supervisor.roles import Mode
from supervisor.serving.options import add_http_arguments

HELP = "Kubernetes controller: give LoadBalancer Services IPs from the IPAddressPools (MetalLB's controller)"
DESCRIPTION = """\
Run metalloid's controller in a Kubernetes cluster, in place of MetalLB's. It
watches Services, EndpointSlices, Nodes, Namespaces and the metallb.io resources
(IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement) in --namespace,
rebuilds every existing assignment from Service status, and writes
status.loadBalancer.ingress, the metallb.io/ip-allocated-from-pool annotation,
IPAddressPool status and MetalLB's Events (on change only). Replicas elect one
writer through the Lease --lease-name.

Credentials: the pod's service account in a cluster, else --kubeconfig (or
$KUBECONFIG, ~/.kube/config). Env: METALLOID_NAMESPACE / POD_NAMESPACE,
METALLOID_LB_CLASS, METALLOID_METRICS_PORT; the lease identity is $POD_NAME or
the host name.
"""


def _default_namespace() -> str:
    return os.environ.get("METALLOID_NAMESPACE") or os.environ.get("POD_NAMESPACE") or "metallb-system"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"), metavar="PATH",
                        help="kubeconfig file (default: in-cluster service account, else ~/.kube/config)")
    parser.add_argument("--namespace", default=_default_namespace(),
                        help="where the metallb.io resources and the Lease live (default: metallb-system)")
    parser.add_argument("--lb-class", default=env("METALLOID_LB_CLASS"), metavar="NAME",
                        help="serve only Services with this spec.loadBalancerClass (default: those without one)")
    add_http_arguments(parser)
    parser.add_argument("--lease-name", default="metalloid-controller",
                        help="the coordination.k8s.io Lease replicas elect a leader on (default: metalloid-controller)")
    parser.add_argument("--api-server", default=env("METALLOID_API_SERVER"), metavar="URL",
                        help=argparse.SUPPRESS)  # plain-HTTP API (kubectl proxy, the tests' fake API server)
    add_logging_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # deferred: +5.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.supervising.serving import serve_supervisor
    from supervisor.supervising.settings import AllocatorSettings, ControllerSettings
    from supervisor.supervising.state import ALLOCATOR, WATCHER
    from supervisor.supervising.supervisor import SupervisorSettings, WorkerSpec

    try:
        setup_logging("supervisor", fmt=args.log_format, level=args.log_level)
    except ValueError as exc:
        print(f"metalloid controller: {exc}", file=sys.stderr)
        return 1
    identity = os.environ.get("POD_NAME") or os.uname().nodename
    logging = {"log_format": args.log_format, "log_level": args.log_level}
    settings = ControllerSettings(
        name="controller", node_name=identity, **logging, kubeconfig=args.kubeconfig, api_host=args.api_server,
        namespace=args.namespace, lb_class=args.lb_class, lease_name=args.lease_name,
    )
    specs = [
        WorkerSpec(name="controller", role=WATCHER, entry="supervisor.kubernetes.worker:run", settings=settings),
        # The supervisor's view (/status, pool metrics); the controller worker writes its own answer
        # (no state file: Service status holds the assignments).
        WorkerSpec(name="allocator", role=ALLOCATOR, entry="supervisor.allocating.worker:run",
                   settings=AllocatorSettings(name="allocator", node_name=identity, mode=Mode.KUBERNETES, **logging)),
    ]
    return serve_supervisor("controller", specs,
                            SupervisorSettings(node_name=identity, mode=Mode.KUBERNETES, version=supervisor_version()),
                            args=args)
