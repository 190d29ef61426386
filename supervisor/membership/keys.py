"""The membership key: reading `--membership-key-file`, and refusing to run without one.

Heartbeats are authenticated with an HMAC key shared by every node. A config
with peers and no key would let anyone on the LAN declare nodes dead and move
IPs, so membership refuses to start unless told to run insecure. The `run`
command calls `key_problem` too, to refuse before anything is spawned.
"""

from __future__ import annotations

import os
from pathlib import Path

from supervisor.config.model import Config


class KeyFileError(ValueError):
    """The membership key file cannot be used; the message says why and how to fix it."""


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read `--membership-key-file`: the raw bytes, surrounding whitespace stripped."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"--membership-key-file {path}: cannot read it: {exc.strerror or exc}") from exc
    if not key:
        raise KeyFileError(
            f"--membership-key-file {path}: the file is empty; put a random secret in it "
            "(e.g. `openssl rand -base64 32 > FILE`), the same on every node"
        )
    return key


def key_problem(config: Config, *, node_name: str, key: bytes | None, insecure: bool) -> str | None:
    """Why membership must not start with this config, or None. The run command calls it too."""
    peers = [n.name for n in config.nodes if n.name != node_name]
    if not peers or key is not None or insecure or config.settings.membership.insecure:
        return None
    shown = ", ".join(sorted(peers)[:3]) + ("…" if len(peers) > 3 else "")
    return (
        f"membership: the config has {len(peers)} peer node(s) ({shown}) but no membership key, and "
        "unauthenticated heartbeats would let anyone on the LAN move your IPs. Create one secret for all "
        "nodes (e.g. `openssl rand -hex 32 > /etc/metalloid/membership.key`, copied to every node) and pass "
        "--membership-key-file PATH; or, on a trusted lab network only, pass --insecure "
        "(or set Settings spec.membership.insecure: true)"
    )
