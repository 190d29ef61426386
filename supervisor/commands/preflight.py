"""`metalloid preflight`: look at a live cluster (read-only) and say what would block the switch from MetalLB."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervisor.kubernetes.client import RawClient
    from supervisor.kubernetes.preflight import Finding

HELP = "read a live cluster and say what would block switching from MetalLB to metalloid (read-only)"
DESCRIPTION = """\
Lists, without changing anything, what a switch from MetalLB to metalloid
depends on, and reports what would block it:

  - MetalLB's ValidatingWebhookConfiguration still registered (with MetalLB's
    controller scaled to 0, every pool edit and ArgoCD sync fails);
  - a metallb.io CRD converting versions through MetalLB's webhook;
  - MetalLB pods still running (labels app=metallb or app.kubernetes.io/name=metallb);
  - metallb.io objects outside --namespace (ignored by metalloid, as by MetalLB);
  - fields metalloid's CRDs would prune, kinds they do not serve (--crds);
  - what metalloid's checks say about the configuration: errors, and the
    fields it keeps but does not act on (its other warnings are printed as
    notes: they do not block).

Each finding is printed as `Kind/namespace/name: problem. Fix: what to do`.
Credentials: in a pod its service account, else --kubeconfig ($KUBECONFIG,
~/.kube/config). Needs only get/list.

Exit status: 0 nothing blocks, 1 something does, 2 the cluster could not be read.
"""

# (kind, version, plural) of MetalLB's configuration kinds, at the versions MetalLB stores.
_CONFIG = (
    ("IPAddressPool", "v1beta1", "ipaddresspools"),
    ("L2Advertisement", "v1beta1", "l2advertisements"),
    ("BGPPeer", "v1beta2", "bgppeers"),
    ("BGPAdvertisement", "v1beta1", "bgpadvertisements"),
    ("BFDProfile", "v1beta1", "bfdprofiles"),
    ("Community", "v1beta1", "communities"),
)


def _default_crds() -> Path:
    # A source checkout or an editable install: the CRDs this metalloid ships.
    return Path(__file__).resolve().parents[2] / "deploy" / "base" / "crds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"), metavar="PATH",
                        help="kubeconfig file (default: in-cluster service account, else ~/.kube/config)")
    parser.add_argument("--namespace", default=env("METALLOID_NAMESPACE") or "metallb-system",
                        help="where metalloid will read the metallb.io resources (default: metallb-system)")
    parser.add_argument("--crds", default=str(_default_crds()), metavar="DIR",
                        help="metalloid's CRD files, to find fields they would prune (default: deploy/base/crds)")
    parser.add_argument("--api-server", default=env("METALLOID_API_SERVER"), metavar="URL", help=argparse.SUPPRESS)


def _items(client: RawClient, path: str, query: dict[str, str | int] | None = None) -> list[dict[str, Any]]:
    """A list's items, each with its kind and apiVersion; [] when the API does not serve the kind (404)."""
    # deferred: +1.1 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.kubernetes.client import ApiError

    try:
        listed = client.request("GET", path, query=query)
    except ApiError as exc:
        if exc.code == 404:
            return []
        raise
    kind = str(listed.get("kind") or "").removesuffix("List")
    return [{"kind": kind, "apiVersion": listed.get("apiVersion"), **item} for item in listed.get("items") or []]


def findings(client: RawClient, *, namespace: str, crds: Path) -> tuple[list[Finding], list[str]]:
    """Everything that blocks the switch, and notes (what could not be checked)."""
    # deferred: +3.4 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    import yaml

    from supervisor.kubernetes import preflight
    from supervisor.kubernetes.watcher import build_config

    notes: list[str] = []
    found: list[Finding] = []
    found += preflight.webhooks(_items(client, "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"))
    found += preflight.conversion_webhooks(_items(client, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"))
    pods = [p for selector in preflight.METALLB_POD_SELECTORS
            for p in _items(client, "/api/v1/pods", {"labelSelector": selector})]  # fmt: skip
    found += preflight.metallb_pods(pods)
    objects = [o for kind, version, plural in _CONFIG for o in _items(client, f"/apis/metallb.io/{version}/{plural}")]
    found += preflight.outside_namespace(objects, namespace)
    files = sorted(crds.glob("*.yaml")) if crds.is_dir() else []
    if files:
        documents = [d for f in files for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
        found += preflight.pruned(objects, preflight.crd_schemas(documents))
    else:
        notes.append(f"no CRD files in {crds}: fields metalloid's CRDs would prune were not checked (--crds DIR)")
    ours = [o for o in objects if (o.get("metadata") or {}).get("namespace") == namespace]
    config, diagnostics = build_config(ours, lb_class=None)
    errors = [f"{d.kind}/{namespace}/{d.name}: {d.message}" for d in diagnostics if d.is_error]
    inert = [f"{f.kind}/{f.namespace or namespace}/{f.name}: {f.message}" for f in config.inert_fields]
    found += preflight.config_verdict(errors, inert)
    # Other warnings do not block the switch (MetalLB behaves the same), but are worth reading.
    notes += [f"{d.kind}/{namespace}/{d.name}: {d.message}" for d in diagnostics
              if not d.is_error and d.kind in preflight.CONFIG_KINDS
              and not any((f.kind, f.name) == (d.kind, d.name) for f in config.inert_fields)]  # fmt: skip
    return found, notes


def run(args: argparse.Namespace) -> int:
    # deferred: +1.1 MiB PSS in every other metalloid process (cli.py imports every command; 2026-12-06)
    from supervisor.kubernetes.client import ApiError, RawClient

    try:
        client = RawClient.connect(kubeconfig=args.kubeconfig, host=args.api_server, user_agent="metalloid-preflight")
    except Exception as exc:  # no kubeconfig, bad credentials file
        print(f"metalloid preflight: cannot connect: {exc}", file=sys.stderr)
        return 2
    try:
        found, notes = findings(client, namespace=args.namespace, crds=Path(args.crds))
    except ApiError as exc:
        print(f"metalloid preflight: cannot read the cluster: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    for finding in found:
        print(f"BLOCKS {finding}")
    for note in notes:
        print(f"note: {note}")
    if found:
        print(f"{len(found)} thing(s) block the switch; see docs/migrating-from-metallb.md")
        return 1
    print("Nothing blocks the switch from MetalLB to metalloid.")
    return 0
