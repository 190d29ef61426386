"""The membership key: reading `--membership-key-file`, and refusing to run without one.

Heartbeats are authenticated with an HMAC key shared by every node. A config
with peers and no key would let anyone on the LAN declare nodes dead and move
IPs, so membership refuses to start unless told to run insecure. The `run`
command calls `key_problem` too, to refuse before anything is spawned.

The key is the file's bytes as they are (surrounding whitespace stripped, no
decoding), so that every version reads the same file the same way. It must be
at least MIN_KEY_BYTES long: a short key is guessable offline from one captured
heartbeat. A key file that others, or a group this process is not in, can read
logs a warning (in Kubernetes, mount the Secret with `defaultMode: 0400`).
"""

from __future__ import annotations

import logging
import os
import stat

from supervisor.config.model import Config
from supervisor.files import RefusedFile, read_regular_file

log = logging.getLogger(__name__)

# 16 bytes: HMAC-SHA256 keys shorter than that are below what RFC 2104 calls
# the minimum sensible length for SHA-256 (half its output), and a 16-character
# text key is already weaker than it looks; `openssl rand -base64 32` gives 44.
MIN_KEY_BYTES = 16
# Far more than any key needs (`openssl rand -base64 32` is 45 bytes).
MAX_KEY_FILE_BYTES = 4096
FIX = "e.g. `openssl rand -base64 32 > FILE`, the same file on every node"


class KeyFileError(ValueError):
    """The membership key file cannot be used; the message says why and how to fix it."""


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read `--membership-key-file`: the raw bytes, surrounding whitespace stripped.

    Refuses a key shorter than MIN_KEY_BYTES; warns (log) when group or others may read the file.
    """
    try:
        # A regular file of at most MAX_KEY_FILE_BYTES: a FIFO or /dev/zero given by mistake is refused, not waited on.
        key = read_regular_file(path, limit=MAX_KEY_FILE_BYTES, what="a membership key file").strip()
        st = os.stat(path)
    except RefusedFile as exc:
        raise KeyFileError(f"--membership-key-file {exc}") from exc
    except OSError as exc:
        raise KeyFileError(f"--membership-key-file {path}: cannot read it: {exc.strerror or exc}") from exc
    if not key:
        raise KeyFileError(f"--membership-key-file {path}: the file is empty; put a random secret in it ({FIX})")
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"--membership-key-file {path}: the key is {len(key)} bytes, at least {MIN_KEY_BYTES} are needed; "
            f"replace it with a longer random secret ({FIX})"
        )
    if readable_by_others(st):
        log.warning(
            "membership.key_file_readable file=%s mode=%04o note=users other than metalloid's can read the "
            "membership key, and whoever has it can move your IPs; fix: chmod 600 %s (or 640 with metalloid's "
            "own group; Kubernetes: Secret volume defaultMode: 0400)",
            path, stat.S_IMODE(st.st_mode), path,
        )  # fmt: skip
    return key


def readable_by_others(st: os.stat_result) -> bool:
    """Others may read the file, or a group this process is not in (0640 root:metalloid is fine)."""
    if st.st_mode & stat.S_IROTH:
        return True
    return bool(st.st_mode & stat.S_IRGRP) and st.st_gid not in {os.getegid(), *os.getgroups()}


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
