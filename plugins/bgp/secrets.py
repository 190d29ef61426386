"""BGPPeer passwordSecret: reading each peer's password off the announcer's loop, and again when it rotates.

In Kubernetes the host reads the Secret (`AnnouncerHost.read_secret`, plugin
API 1.2: its own stdlib API client, the speaker's service account with `get`
on Secrets in metalloid's namespace: deploy/frr's Role, the only Secret access
metalloid has), as MetalLB's speaker reads it (a Secret of type
kubernetes.io/basic-auth, key `password`); standalone from the file
`secrets_dir/NAME` (`frr.secret_password`). The host's read blocks up to ~5 s.

Reads are slow and can fail (API down, RBAC missing, no such Secret), so they
happen in the announcer's worker thread (`refresh`), never in `update()`:
`update()` renders with what was last read (`cached`) and says which Secrets
it needs (`want`); the worker reads what is due and re-renders when a value
changed. Every value is read again after `refresh_seconds`, so a rotated
password reaches FRR without a restart. A failed read keeps the last good
value (a peer does not lose its password because the API blinked) and is
reported once per distinct error (`errors`), naming the Secret and the fix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from plugins.bgp.frr import secret_password
from supervisor.api import AnnouncerHost, SecretUnavailable

Ref = tuple[str, str]  # (namespace, name)
Reader = Callable[[str, str], str | None]

REFRESH_SECONDS = 30.0  # a rotated password is in FRR within this (plus one reload)


class SecretError(Exception):
    """A passwordSecret that cannot be read, with what to do about it."""


class PasswordSecrets:
    def __init__(self, read: Reader, *, refresh_seconds: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._read = read
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._wanted: frozenset[Ref] = frozenset()
        self._values: dict[Ref, str] = {}
        self._read_at: dict[Ref, float] = {}
        self.errors: dict[Ref, str] = {}

    def want(self, refs: Iterable[Ref]) -> bool:
        """The Secrets the configuration names now; True when one of them was never tried (read it soon)."""
        wanted = frozenset(refs)
        with self._lock:
            self._wanted = wanted
            for ref in set(self._values) - wanted:
                del self._values[ref]
            for ref in set(self._read_at) - wanted:
                del self._read_at[ref]
            for ref in set(self.errors) - wanted:
                del self.errors[ref]
            return any(ref not in self._read_at for ref in wanted)

    def pending(self, ref: Ref) -> bool:
        """Not tried yet: a peer skipped for want of it is not an error (yet)."""
        with self._lock:
            return ref in self._wanted and ref not in self._read_at

    def cached(self, ref: Ref) -> str | None:
        with self._lock:
            return self._values.get(ref)

    def refresh(self) -> tuple[bool, list[tuple[Ref, str]]]:
        """Read what is due (worker thread). (whether a value changed, the new errors to log)."""
        now = self._clock()
        with self._lock:
            due = sorted(ref for ref in self._wanted
                         if now - self._read_at.get(ref, float("-inf")) >= self._refresh_seconds)  # fmt: skip
        changed, new_errors = False, []
        for ref in due:
            try:
                value = self._read(*ref)
                if value is None:
                    raise SecretError(f"Secret {ref[0]}/{ref[1]} has no non-empty `password` key")
                error = None
            except Exception as exc:  # a reader's failure is reported, never fatal
                value, error = None, str(exc) or type(exc).__name__
            with self._lock:
                if ref not in self._wanted:
                    continue
                self._read_at[ref] = now
                if value is not None and self._values.get(ref) != value:
                    self._values[ref] = value
                    changed = True
                if error is None:
                    self.errors.pop(ref, None)
                elif self.errors.get(ref) != error:
                    self.errors[ref] = error
                    new_errors.append((ref, error))
                    if ref not in self._values:
                        changed = True  # tried and failed: the peer stays skipped, now as an error
        return changed, new_errors


def file_reader(secrets_dir: Path | None) -> Reader:
    """Standalone: `secrets_dir/NAMESPACE/NAME` or `secrets_dir/NAME`, the file's text is the password."""

    def read(namespace: str, name: str) -> str | None:
        value = secret_password(secrets_dir, namespace, name)
        if value is None:
            where = f"{secrets_dir}/{name}" if secrets_dir else "nowhere (the bgp AnnouncerConfig sets no secrets_dir)"
            raise SecretError(f"no password file for passwordSecret {namespace}/{name}: looked in {where}")
        return value

    return read


def kubernetes_reader(host: AnnouncerHost) -> Reader:
    """Kubernetes: the Secret's `password` key, read by the host (`AnnouncerHost.read_secret`,
    over its own API connection with the speaker's service account)."""

    def read(namespace: str, name: str) -> str | None:
        try:
            data = host.read_secret(namespace, name)
        except SecretUnavailable as exc:
            if exc.code == 403:
                raise SecretError(f"the speaker may not read Secret {namespace}/{name} (403): passwordSecret must "
                                  "be in metalloid's namespace, where deploy/frr's Role grants `get` on "
                                  "Secrets") from None  # fmt: skip
            if exc.code == 404:
                raise SecretError(f"Secret {namespace}/{name} does not exist: create it (type "
                                  "kubernetes.io/basic-auth, key `password`)") from None  # fmt: skip
            raise SecretError(str(exc)) from None
        value = data.get("password")
        return value.decode() if value else None

    return read
