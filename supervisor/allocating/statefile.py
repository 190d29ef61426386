"""The standalone allocator's memory: assignments persisted in the state directory.

Every node of a standalone cluster allocates on its own; what keeps a Service's
IP across a restart of a worker, the supervisor or the host is this file
(plus `status.loadBalancer.ingress` in the config, which wins, see the
allocator). Writes are crash-consistent: write a temporary file in the same
directory, fsync it, rename it over the old one, fsync the directory. A reader
therefore sees the old state or the new one, never a torn file, whatever moment
a kill -9 or power loss strikes.

A file that does not parse, or was written by an incompatible format version,
is never silently discarded: losing it would move Services to new IPs. Loading
raises `StateFileError` naming the file and the fix, and `metalloid run`
refuses to start on it.

Format (JSON, sorted keys, version 1):

    {"format": "metalloid.assignments", "version": 1,
     "assignments": {"ns/name": {"ips": ["10.0.10.10"], "pool": "first-pool"}}}
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from supervisor.config.model import IPAddress, ServiceKey

FORMAT = "metalloid.assignments"
VERSION = 1
FILENAME = "assignments.json"
DEFAULT_STATE_DIR = "/var/lib/metalloid"


class StateFileError(Exception):
    """The state file exists but cannot be used; the message names the file and the fix."""


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / FILENAME


def encode(
    assignments: Mapping[ServiceKey, tuple[IPAddress, ...]], pools: Mapping[ServiceKey, str] | None = None
) -> bytes:
    """The file's bytes for `assignments` (deterministic: same state, same bytes)."""
    body: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "assignments": {
            str(key): {"ips": [str(ip) for ip in ips], "pool": (pools or {}).get(key)}
            for key, ips in sorted(assignments.items())
        },
    }
    return (json.dumps(body, sort_keys=True, indent=1) + "\n").encode()


def decode(data: bytes, *, path: str = "<state>") -> dict[ServiceKey, tuple[IPAddress, ...]]:
    """Parse the file's bytes; raise StateFileError with a fix on anything unexpected."""
    fix = (
        f"metalloid keeps it untouched so no Service silently changes IP. Inspect it, then either restore it from a "
        f"backup or move it aside (mv {path} {path}.bad) to start again from the IPs in the config's "
        f"Service status.loadBalancer.ingress"
    )
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateFileError(f"state file {path} is corrupt (not JSON: {exc}); {fix}") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise StateFileError(f"state file {path} is not a metalloid assignments file (format is not {FORMAT!r}); {fix}")
    version = body.get("version")
    if version != VERSION:
        raise StateFileError(
            f"state file {path} has format version {version!r}, this metalloid reads version {VERSION} "
            f"(written by a different metalloid release); run the release that wrote it, or {fix}"
        )
    raw = body.get("assignments")
    if not isinstance(raw, dict):
        raise StateFileError(f"state file {path}: 'assignments' is not an object; {fix}")
    result: dict[ServiceKey, tuple[IPAddress, ...]] = {}
    for key, entry in raw.items():
        try:
            ips = tuple(ipaddress.ip_address(ip) for ip in entry["ips"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"state file {path}: service {key!r} has no valid 'ips' ({exc}); {fix}") from exc
        result[ServiceKey.parse(key)] = ips
    return result


def load(state_dir: str | os.PathLike[str]) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    """The persisted assignments; empty when there is no file yet (a first start)."""
    path = state_path(state_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StateFileError(f"state file {path} cannot be read ({exc}); fix its permissions or --state-dir") from exc
    return decode(data, path=str(path))


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new bytes only."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself lives in the directory: fsync it, or a power loss may
    # bring back the old name (or none).
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(
    state_dir: str | os.PathLike[str],
    assignments: Mapping[ServiceKey, tuple[IPAddress, ...]],
    pools: Mapping[ServiceKey, str] | None = None,
) -> Path:
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir)
    write_atomic(path, encode(assignments, pools))
    return path


def check_writable(state_dir: str | os.PathLike[str]) -> None:
    """Fail early (at `metalloid run` start) when the state directory is unusable."""
    directory = Path(state_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateFileError(
            f"state directory {directory} cannot be created ({exc}); pass a writable --state-dir"
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StateFileError(f"state directory {directory} is not writable; fix its permissions or pass --state-dir")
