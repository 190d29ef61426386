"""Who may reach the node's HTTP endpoint, and how: the flags `run`, `controller` and `speaker` share.

The endpoint carries two kinds of things. Probes and metrics (/healthz,
/readyz, /metrics) must be reachable where the kubelet and Prometheus look:
the pod's or the node's address. /status names nodes, the config path,
worker PIDs and every Service's IPs; the speaker runs on the host network, so
whatever it binds is on the LAN. Hence the defaults (docs/operating.md,
"Exposure"): /status answers only clients on this host (`--status-access
local`: loopback, or a connection whose source is the address it reached),
and the manifests bind the node's or pod's own address instead of every
interface. A bearer token (`--auth-token-file`) and TLS (`--metrics-cert-dir`
with `tls.crt`/`tls.key`, MetalLB's flag and file names) are optional.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from supervisor.files import RefusedFile, read_regular_file

if TYPE_CHECKING:
    import ssl

STATUS_LOCAL = "local"
STATUS_ANY = "any"
# Long enough for any random token, short enough that a wrong path (a
# certificate, a config) is refused rather than used as a secret.
MAX_TOKEN_BYTES = 4096
MIN_TOKEN_CHARS = 16
# MetalLB's names → `ssl.TLSVersion` member names. ssl itself is imported
# when a context is made: every command's flags are built at start (cli.py),
# and `metalloid run` forks its start-up check only after that (~17 ms of CPU,
# BENCHMARKS.md, 2026-12-07); the HTTP server imports ssl once the check runs.
TLS_VERSIONS = {"VersionTLS12": "TLSv1_2", "VersionTLS13": "TLSv1_3"}


class HttpOptionError(Exception):
    """An HTTP flag points at something unusable; the message names it and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOptions:
    port: int = 7472
    host: str = "0.0.0.0"
    status_access: str = STATUS_LOCAL
    token: str | None = None
    tls: ssl.SSLContext | None = None


def add_http_arguments(parser: argparse.ArgumentParser, *, default_port: int = 7472) -> None:
    env = os.environ.get
    parser.add_argument("--metrics-port", type=int, default=int(env("METALLOID_METRICS_PORT", str(default_port))),
                        help=f"HTTP port for /metrics, /healthz, /readyz, /status (default: {default_port}; "
                             "0 = any free)")
    parser.add_argument("--metrics-host", default=env("METALLOID_METRICS_HOST", "0.0.0.0"),
                        help="address the HTTP server binds (default: 0.0.0.0; the manifests bind the pod's or "
                             "node's own address)")
    parser.add_argument("--status-access", choices=(STATUS_LOCAL, STATUS_ANY),
                        default=env("METALLOID_STATUS_ACCESS", STATUS_LOCAL),
                        help="who may read /status: 'local' (default: clients on this host only) or 'any' "
                             "(every client that reaches the port; pair it with --auth-token-file)")
    parser.add_argument("--auth-token-file", default=env("METALLOID_AUTH_TOKEN_FILE") or None, metavar="FILE",
                        help="require 'Authorization: Bearer <token>' with the token in FILE for /metrics and "
                             "/status (/healthz and /readyz stay open for probes)")
    parser.add_argument("--metrics-cert-dir", default=env("METALLOID_METRICS_CERT_DIR") or None, metavar="DIR",
                        help="serve HTTPS with DIR/tls.crt and DIR/tls.key (a kubernetes.io/tls Secret mount); "
                             "default: plain HTTP")
    parser.add_argument("--tls-min-version", choices=sorted(TLS_VERSIONS), default="VersionTLS13",
                        help="minimum TLS version with --metrics-cert-dir (default: VersionTLS13, as MetalLB)")


def http_options(args: argparse.Namespace) -> HttpOptions:
    """The options from parsed flags; raises HttpOptionError naming a bad file and the fix."""
    token = read_token(args.auth_token_file) if args.auth_token_file else None
    tls = tls_context(args.metrics_cert_dir, TLS_VERSIONS[args.tls_min_version]) if args.metrics_cert_dir else None
    return HttpOptions(port=args.metrics_port, host=args.metrics_host, status_access=args.status_access,
                       token=token, tls=tls)


def read_token(path: str) -> str:
    try:
        raw = read_regular_file(path, limit=MAX_TOKEN_BYTES, what="a token file")
    except (RefusedFile, OSError) as exc:
        raise HttpOptionError(f"--auth-token-file {path}: {getattr(exc, 'reason', None) or exc}; "
                              "point it at the file holding the bearer token") from None
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise HttpOptionError(f"--auth-token-file {path}: the token must be ASCII (an HTTP header value); "
                              "generate one with `openssl rand -hex 32`") from None
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() or not c.isprintable() for c in token):
        raise HttpOptionError(f"--auth-token-file {path}: the token must be at least {MIN_TOKEN_CHARS} "
                              "printable characters with no spaces; generate one with `openssl rand -hex 32`")
    return token


def tls_context(cert_dir: str, minimum: str) -> ssl.SSLContext:
    """A server context with DIR/tls.crt and DIR/tls.key; `minimum` is a `TLS_VERSIONS` value."""
    import ssl  # deferred: see TLS_VERSIONS

    cert, key = os.path.join(cert_dir, "tls.crt"), os.path.join(cert_dir, "tls.key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion[minimum]
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise HttpOptionError(f"--metrics-cert-dir {cert_dir}: cannot load tls.crt and tls.key ({exc}); mount a "
                              "kubernetes.io/tls Secret there, or drop the flag for plain HTTP") from None
    return context
