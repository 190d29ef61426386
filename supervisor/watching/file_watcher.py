"""The standalone watcher: the config file(s) in, ConfigLoaded / ConfigRejected out.

Polling, not inotify: a stat every `poll_seconds` is cheap, needs no extra
dependency, and survives what inotify gets wrong (editors that rename over the
file, ConfigMaps that swap a symlinked directory). A change is noticed on
(mtime, size) and confirmed by a content hash, and only loaded once the files
have been still for `debounce_seconds`, because editors and `kubectl cp` write
in several steps. SIGHUP, or `Control.RELOAD` from the supervisor (its own SIGHUP),
reloads at once.

A reload goes through `load_config_files`, exactly like `metalloid check`,
plus the plugins' validators, so a rejection carries the same messages. A
config-level error (a pool, an advertisement, the YAML itself) rejects the
config, which changes nothing downstream: the supervisor keeps routing the
last good one and only marks the config stale. An error about one Service
does not: the config is loaded, that Service is pending with the reason.
Nothing a file holds kills the watcher: the loader reports everything as
diagnostics, and an exception that still escapes is a rejection too (dying
would restart the watcher into the same file until the supervisor gives up,
a crash loop).

`metalloid run` has parsed the files once already, in its start-up check;
that parse arrives first in the inbox (`ParsedAtStart`), and the first load
reads only the documents that changed since (`DocumentReuse.adopt`) instead
of parsing all of them a second time on the way to ready. The files are still
read, checked and validated here, as on every load.

A large config (the loader's limit is 1 MiB per file) takes seconds to
parse, longer than the supervisor's hung timeout, so heartbeats continue
from a helper thread during a load, for at most MAX_LOAD_SECONDS: a load
stuck beyond that is left to the hung detection.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from supervisor.config.isolation import config_errors, object_errors
from supervisor.config.loading import MAX_CONFIG_BYTES, internal_error
from supervisor.config.reusing import DocumentReuse
from supervisor.files import RefusedFile, read_regular_file
from supervisor.messages import ConfigLoaded, ConfigRejected, Control, FromWorker, ParsedAtStart
from supervisor.supervising.child import Heartbeat, Inbox, Outbox, receive
from supervisor.supervising.memory import release_memory
from supervisor.supervising.settings import WatcherSettings
from supervisor.watching.loader import Loader, default_loader

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[int, int] | None, ...]


def fingerprint(paths: Sequence[str]) -> Fingerprint:
    found: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((st.st_mtime_ns, st.st_size))
    return tuple(found)


def content_hash(paths: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        try:
            # The loader's own limits: a FIFO or /dev/zero here must not hang
            # the watcher before the loader gets to refuse it.
            digest.update(read_regular_file(path, limit=MAX_CONFIG_BYTES))
        except RefusedFile as exc:
            digest.update(f"<refused {exc.reason}>".encode())
        except OSError as exc:
            digest.update(f"<unreadable {exc.errno}>".encode())
        digest.update(b"\0")
    return digest.hexdigest()


class FileWatcherCore:
    """Decides when to (re)load; `poll(now)` returns the messages to send."""

    def __init__(self, paths: Sequence[str], *, load: Loader, debounce_seconds: float) -> None:
        self.paths = tuple(paths)
        self._load = load
        self._debounce = debounce_seconds
        self._seen: Fingerprint | None = None
        self._changed_at: float | None = None
        self._loaded_hash: str | None = None
        self.generation = 0

    def poll(self, now: float, *, force: bool = False) -> list[FromWorker]:
        current = fingerprint(self.paths)
        if force or self._seen is None:
            self._seen, self._changed_at = current, None
            return self.reload(reason="signal" if force else "start")
        if current != self._seen:
            # Something moved: wait until the files are still for the debounce.
            self._seen, self._changed_at = current, now
            return []
        if self._changed_at is None or now - self._changed_at < self._debounce:
            return []
        self._changed_at = None
        if content_hash(self.paths) == self._loaded_hash:
            log.debug("config.unchanged origin=%s", self.origin)
            return []
        return self.reload(reason="changed")

    @property
    def origin(self) -> str:
        return ",".join(self.paths)

    def reload(self, *, reason: str) -> list[FromWorker]:
        self.generation += 1
        digest = content_hash(self.paths)
        try:
            config, diagnostics = self._load(self.paths)
        except Exception as exc:
            # Whatever the files hold, the watcher survives and the last good
            # config stays: dying here would restart the watcher into the same
            # files until the supervisor gives up (a crash loop).
            log.debug("config.load-failed origin=%s", self.origin, exc_info=True)
            config, diagnostics = None, [internal_error(self.paths, exc)]
        if config is None or config_errors(diagnostics):
            errors = tuple(config_errors(diagnostics))
            for d in errors:
                log.error("config.rejected origin=%s reason=%s diagnostic=%s", self.origin, reason, d)
            # The hash is not remembered: fixing the file back to the last
            # good bytes must reload it (and clear the stale flag).
            self._loaded_hash = None
            return [ConfigRejected(generation=self.generation, origin=self.origin, diagnostics=errors)]
        self._loaded_hash = digest
        # Errors confined to one Service travel with the warnings: the config
        # is served, that Service is pending with the reason (its `problem`).
        warnings = tuple(diagnostics)
        for d in object_errors(diagnostics):
            log.error("config.object_error origin=%s diagnostic=%s", self.origin, d)
        log.info("config.loaded origin=%s reason=%s generation=%d services=%d pools=%d", self.origin, reason,
                 self.generation, len(config.services), len(config.pools))
        return [ConfigLoaded(generation=self.generation, config=config, origin=self.origin, warnings=warnings)]


class _Hangup:
    def __init__(self) -> None:
        self.pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True


def run(settings: WatcherSettings, inbox: Inbox, outbox: Outbox, *, load: Loader | None = None,
        install_signal: bool = True) -> None:
    """Worker entry: poll until Control.STOP. `load` and `install_signal` are for tests."""
    reuse = DocumentReuse()
    hangup = _Hangup()
    if install_signal:
        signal.signal(signal.SIGHUP, hangup)
    beat = Heartbeat(settings.name, outbox, settings.heartbeat_seconds)
    if settings.parsed_at_start and not take_start_parse(inbox, reuse, beat):
        return
    core = FileWatcherCore(settings.config_paths, load=load or default_loader(settings.node_name, reuse=reuse),
                           debounce_seconds=settings.debounce_seconds)
    while True:
        # Beat before a (possibly long) load, so a restarted watcher counts
        # as alive while it parses a big config.
        beat.maybe()
        force, hangup.pending = hangup.pending, False
        with _BeatingWhileLoading(beat, settings.heartbeat_seconds):
            messages = core.poll(time.monotonic(), force=force)
        for message in messages:
            outbox.put(message)
        if messages:
            del messages
            release_memory()  # the parse's garbage, and the previous config
        beat.maybe()
        incoming: object = receive(inbox, settings.poll_seconds)
        if incoming is Control.STOP:
            return
        # The supervisor forwards its SIGHUP this way (and tests in threads, where signals cannot reach).
        if incoming is RELOAD:
            hangup.pending = True


def take_start_parse(inbox: Inbox, reuse: DocumentReuse, beat: Heartbeat) -> bool:
    """Wait for the `ParsedAtStart` the supervisor puts first and adopt it; False when told to stop instead.

    It is the first message of this inbox, so it is there at once; the wait is
    bounded all the same: without it the watcher reads every document, as a
    restarted one does.
    """
    deadline = time.monotonic() + START_PARSE_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        beat.maybe()
        incoming: object = receive(inbox, min(left, max(beat.due_in(time.monotonic()), 0.01)))
        if isinstance(incoming, ParsedAtStart):
            if reuse.adopt(incoming.documents):
                log.debug("config.adopted source=start-up-check bytes=%d", len(incoming.documents))
            return True
        if incoming is Control.STOP:
            return False
    log.warning("config.start-parse-missing waited=%gs note=reading every document", START_PARSE_SECONDS)
    return True


RELOAD = Control.RELOAD
# The start-up parse is the first message in the inbox, put right after the
# spawn; this only bounds a wait that a supervisor bug would make endless.
START_PARSE_SECONDS = 5.0
# A 1 MiB config parses in ~4 s on a loaded 2-core node; ten times that is
# no longer a slow load but a stuck one.
MAX_LOAD_SECONDS = 60.0


class _BeatingWhileLoading:
    """Keeps `beat` going from a helper thread while the loop is busy loading."""

    def __init__(self, beat: Heartbeat, interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher-beat", daemon=True)

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        deadline = time.monotonic() + MAX_LOAD_SECONDS
        while not self._done.wait(self._interval / 2) and time.monotonic() < deadline:
            self._beat.maybe()
