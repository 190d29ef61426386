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

The schema is strict, because a state file that is read "generously" hands
Services IPs nobody assigned: every key and type must be exactly what
`encode` writes (no unknown or duplicate keys, no `true` for 1, no NaN, no
dict where a list belongs, canonical addresses, `namespace/name` keys), the
file must be a regular file (never followed through a symlink: the state
directory is root's, a link in it could point anywhere) of at most
`MAX_STATE_BYTES`. Anything else is refused with the reason; nothing is
reinterpreted. Temporary files a killed writer left behind are removed when
the allocator starts (`remove_temporaries`), with a warning.

Format (JSON, sorted keys, version 1):

    {"format": "metalloid.assignments", "version": 1,
     "assignments": {"ns/name": {"ips": ["10.0.10.10"], "pool": "first-pool"}}}
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from supervisor.config.model import IPAddress, ServiceKey
from supervisor.files import RefusedFile, read_regular_file

log = logging.getLogger(__name__)

FORMAT = "metalloid.assignments"
VERSION = 1
FILENAME = "assignments.json"
# ~100 bytes per Service: 16 MiB is ~150,000 Services, far beyond any node,
# and small enough to parse in well under a second.
MAX_STATE_BYTES = 16 * 1024 * 1024
# A Service holds one address per family (dual-stack: two).
MAX_IPS = 2
# Kubernetes names are at most 253 characters, with no slash; whatever the
# config allowed is written back, so nothing stricter than that.
_NAME = re.compile(r"[^/\x00-\x1f\x7f]{1,253}")
_TOP_KEYS = frozenset({"format", "version", "assignments"})
_ENTRY_KEYS = frozenset({"ips", "pool"})
_TEMPORARY = re.compile(r"\.assignments\.json\.\d+\.tmp")


class StateFileError(Exception):
    """The state file exists but cannot be used; the message names the file and the fix."""


def state_path(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / FILENAME


def encode(
    assignments: Mapping[ServiceKey, tuple[IPAddress, ...]], pools: Mapping[ServiceKey, str] | None = None
) -> bytes:
    """The file's bytes for `assignments` (deterministic: same state, same bytes).

    One line per Service, its keys sorted, written by json's C encoder: the file
    is written before the allocator answers a reload, and `json.dumps(indent=1)`
    (the pure-Python encoder) was a quarter of that answer's CPU with 1,000
    Services. Any JSON reader reads it; `decode` is indifferent to the layout.
    """
    pools = pools or {}
    # ServiceKey's own order, compared as plain tuples (its dataclass __lt__ is Python code).
    entries = [f"  {json.dumps(str(key))}: "
               f"{json.dumps({'ips': [str(ip) for ip in ips], 'pool': pools.get(key)}, sort_keys=True)}"
               for key, ips in sorted(assignments.items(), key=lambda item: (item[0].namespace, item[0].name))]
    body = "{\n" + ",\n".join(entries) + "\n }" if entries else "{}"
    tail = f' "format": {json.dumps(FORMAT)},\n "version": {json.dumps(VERSION)}\n}}\n'
    return f'{{\n "assignments": {body},\n{tail}'.encode()


class _Doubtful(Exception):
    """One reason the file's content is not exactly what `encode` writes."""


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise _Doubtful(f"key {duplicate!r} appears twice in one object (JSON keeps only the last)")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise _Doubtful(f"{name} is not a value this file ever holds")


def _exact_int(value: Any) -> bool:
    return type(value) is int  # not bool, not 1.0


def decode(data: bytes, *, path: str = "<state>") -> dict[ServiceKey, tuple[IPAddress, ...]]:
    """Parse the file's bytes; raise StateFileError with a fix on anything unexpected."""
    fix = (
        f"metalloid keeps it untouched so no Service silently changes IP. Inspect it, then either restore it from a "
        f"backup or move it aside (mv {path} {path}.bad) to start again from the IPs in the config's "
        f"Service status.loadBalancer.ingress"
    )
    try:
        text = data.decode("utf-8")  # strictly: no BOM, UTF-16 or surrogates guessed into shape
        body = json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    except _Doubtful as exc:
        raise StateFileError(f"state file {path} is corrupt ({exc}); {fix}") from None
    except RecursionError:
        raise StateFileError(f"state file {path} is corrupt (nested far deeper than the format); {fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateFileError(f"state file {path} is corrupt (not JSON: {exc}); {fix}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise StateFileError(f"state file {path} is not a metalloid assignments file (format is not {FORMAT!r}); {fix}")
    version = body.get("version")
    if not _exact_int(version) or version != VERSION:
        raise StateFileError(
            f"state file {path} has format version {version!r}, this metalloid reads version {VERSION} "
            f"(written by a different metalloid release); run the release that wrote it, or {fix}"
        )
    try:
        return _assignments(body)
    except _Doubtful as exc:
        raise StateFileError(f"state file {path}: {exc}; {fix}") from None


def _assignments(body: dict[str, Any]) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    unknown = sorted(set(body) - _TOP_KEYS)
    if unknown:
        raise _Doubtful(f"unknown top-level key(s) {', '.join(map(repr, unknown))}")
    raw = body.get("assignments")
    if not isinstance(raw, dict):
        raise _Doubtful("'assignments' is not an object")
    result: dict[ServiceKey, tuple[IPAddress, ...]] = {}
    for key, entry in raw.items():
        result[_service_key(key)] = _entry_ips(key, entry)
    return result


def _service_key(key: str) -> ServiceKey:
    namespace, slash, name = key.partition("/")
    if not slash or not _NAME.fullmatch(namespace) or not _NAME.fullmatch(name):
        raise _Doubtful(f"service {key[:80]!r} is not a 'namespace/name' key")
    return ServiceKey(namespace=namespace, name=name)


def _entry_ips(key: str, entry: Any) -> tuple[IPAddress, ...]:
    if not isinstance(entry, dict):
        raise _Doubtful(f"service {key!r} has no valid 'ips' (its entry is not an object)")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown or "ips" not in entry:
        what = f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown else "no 'ips'"
        raise _Doubtful(f"service {key!r} has {what}")
    pool = entry.get("pool")
    if pool is not None and (not isinstance(pool, str) or not 0 < len(pool) <= 253):
        raise _Doubtful(f"service {key!r} has a 'pool' that is not a pool name: {pool!r:.80}")
    raw_ips = entry["ips"]
    if not isinstance(raw_ips, list) or len(raw_ips) > MAX_IPS:
        raise _Doubtful(f"service {key!r} has no valid 'ips' (not a list of at most {MAX_IPS} addresses)")
    ips: list[IPAddress] = []
    for raw_ip in raw_ips:
        try:
            ip = ipaddress.ip_address(raw_ip) if isinstance(raw_ip, str) else None
        except ValueError:
            ip = None
        if ip is None or str(ip) != raw_ip:
            raise _Doubtful(f"service {key!r} has no valid 'ips' ({raw_ip!r:.80} is not an address as metalloid "
                            "writes it)")
        if any(ip.version == seen.version for seen in ips):
            raise _Doubtful(f"service {key!r} has no valid 'ips' (two IPv{ip.version} addresses)")
        ips.append(ip)
    return tuple(ips)


def load(state_dir: str | os.PathLike[str]) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    """The persisted assignments; empty when there is no file yet (a first start)."""
    path = state_path(state_dir)
    try:
        data = read_regular_file(path, limit=MAX_STATE_BYTES, what="a state file", follow_symlinks=False)
    except FileNotFoundError:
        return {}
    except RefusedFile as exc:
        raise StateFileError(f"state file {exc} (metalloid never writes one like this); move it aside "
                             f"(mv {path} {path}.bad) to start again from the IPs in the config's Service "
                             "status.loadBalancer.ingress") from None
    except OSError as exc:
        raise StateFileError(f"state file {path} cannot be read ({exc}); fix its permissions or --state-dir") from exc
    return decode(data, path=str(path))


def remove_temporaries(state_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a writer killed mid-write left; the paths removed.

    Only at start, when no writer of ours runs: a temporary file is never the
    state (the rename is what publishes it), so it is garbage. Only regular
    files and symlinks with our exact temporary name go; anything else is left
    alone with a warning.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(state_dir)
    except OSError:
        return removed
    for name in names:
        if not _TEMPORARY.fullmatch(name):
            continue
        path = Path(state_dir) / name
        try:
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                log.warning("state.temporary-kept path=%s reason=not-a-file", path)
                continue
            path.unlink()
        except OSError as exc:
            log.warning("state.temporary-kept path=%s reason=%s", path, exc.strerror or exc)
            continue
        log.warning("state.temporary-removed path=%s reason=left-by-an-interrupted-write", path)
        removed.append(path)
    return removed


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old or the new bytes only."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # O_EXCL|O_NOFOLLOW: never write through a link someone planted under
    # our temporary name; one left by an earlier process with our PID goes.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, flags, 0o644)
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
