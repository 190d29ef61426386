"""The standalone file watcher: debounce, hash, SIGHUP-forced reloads, rejection with check's messages."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from supervisor.config import loading, reusing
from supervisor.config.diagnostics import Diagnostic, error
from supervisor.config.model import Config, Source
from supervisor.config.reusing import DocumentReuse
from supervisor.messages import ConfigLoaded, ConfigRejected, Control, ParsedAtStart, WorkerHeartbeat
from supervisor.supervising.settings import WatcherSettings
from supervisor.watching import file_watcher
from supervisor.watching.file_watcher import FileWatcherCore
from supervisor.watching.loader import default_loader
from tests.runtime_helpers import config_text


class FakeLoader:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    def __call__(self, paths: Sequence[str]) -> tuple[Config | None, list[Diagnostic]]:
        self.calls += 1
        if self.fail:
            return None, [error(Source(file=paths[0], line=3), "IPAddressPool", "p", "bad")]
        return Config(), []


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, FakeLoader, FileWatcherCore]:
    path = tmp_path / "c.yaml"
    path.write_text("a")
    loader = FakeLoader()
    return path, loader, FileWatcherCore([str(path)], load=loader, debounce_seconds=0.2)


def _touch(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_loads_at_start(setup: tuple[Path, FakeLoader, FileWatcherCore]) -> None:
    _, loader, core = setup
    [msg] = core.poll(0.0)
    assert isinstance(msg, ConfigLoaded) and msg.generation == 1 and loader.calls == 1


def test_change_waits_for_the_debounce(setup: tuple[Path, FakeLoader, FileWatcherCore]) -> None:
    path, loader, core = setup
    core.poll(0.0)
    _touch(path, "bb", 10**18)
    assert core.poll(1.0) == []  # change seen
    assert core.poll(1.1) == []  # still inside the debounce
    [msg] = core.poll(1.25)
    assert isinstance(msg, ConfigLoaded) and msg.generation == 2 and loader.calls == 2


def test_a_change_during_the_debounce_restarts_it(setup: tuple[Path, FakeLoader, FileWatcherCore]) -> None:
    path, _, core = setup
    core.poll(0.0)
    _touch(path, "bb", 10**18)
    core.poll(1.0)
    _touch(path, "bbb", 10**18 + 1)
    assert core.poll(1.25) == []
    assert len(core.poll(1.5)) == 1


def test_touch_without_content_change_does_not_reload(setup: tuple[Path, FakeLoader, FileWatcherCore]) -> None:
    path, loader, core = setup
    core.poll(0.0)
    os.utime(path, ns=(10**18, 10**18))
    core.poll(1.0)
    assert core.poll(2.0) == [] and loader.calls == 1


def test_force_reloads_even_when_unchanged(setup: tuple[Path, FakeLoader, FileWatcherCore]) -> None:
    _, loader, core = setup
    core.poll(0.0)
    [msg] = core.poll(0.1, force=True)
    assert isinstance(msg, ConfigLoaded) and loader.calls == 2


def test_rejected_then_fixed_back_reloads(setup: tuple[Path, FakeLoader, FileWatcherCore]) -> None:
    path, loader, core = setup
    core.poll(0.0)
    loader.fail = True
    _touch(path, "broken", 10**18)
    core.poll(1.0)
    [rejected] = core.poll(2.0)
    assert isinstance(rejected, ConfigRejected) and "bad" in str(rejected.diagnostics[0])
    loader.fail = False
    _touch(path, "a", 10**18 + 5)  # the old good bytes again
    core.poll(3.0)
    [loaded] = core.poll(4.0)
    assert isinstance(loaded, ConfigLoaded)


def test_node_must_be_listed_when_the_config_lists_nodes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(1, node="n1"))
    config, diagnostics = default_loader("n9")([str(path)])
    assert config is None
    assert any("--node n9" in str(d) and "n1" in str(d) for d in diagnostics)
    config, _ = default_loader("n1")([str(path)])
    assert config is not None


def test_the_watchers_loader_keeps_documents_and_answers_as_the_plain_one(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    watcher_load = default_loader("n1", reuse=DocumentReuse())
    for text in (config_text(20), config_text(21), config_text(21) + "---\nkind: Nonsense\n", config_text(22)):
        path.write_text(text)
        assert watcher_load([str(path)]) == default_loader("n1")([str(path)])


class ThreadedWatcher:
    """`file_watcher.run` in a thread with plain queues, as the supervisor would drive it."""

    def __init__(self, path: Path, *, heartbeat_seconds: float = 0.05, first: Any = None,
                 parsed_at_start: bool = False, **run_kwargs: Any) -> None:
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.outbox: queue.Queue[Any] = queue.Queue()
        if first is not None:
            self.inbox.put(first)  # as the supervisor puts a spec's first message at the spawn
        settings = WatcherSettings(name="watcher", node_name="n1", config_paths=(str(path),), poll_seconds=0.02,
                                   debounce_seconds=0.05, heartbeat_seconds=heartbeat_seconds,
                                   parsed_at_start=parsed_at_start)
        self.thread = threading.Thread(target=file_watcher.run, args=(settings, self.inbox, self.outbox),
                                       kwargs={"install_signal": False, **run_kwargs}, daemon=True)
        self.thread.start()

    def next_config(self) -> Any:
        """The next message that is not a heartbeat."""
        while True:
            message = self.outbox.get(timeout=5)
            if not isinstance(message, WorkerHeartbeat):
                return message

    def stop(self) -> None:
        self.inbox.put(Control.STOP)
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def test_worker_in_a_thread_rejects_an_invalid_reload_with_checks_messages(tmp_path: Path) -> None:
    from supervisor.config.loading import load_config_files
    from supervisor.plugin_checks import plugin_validators

    path = tmp_path / "c.yaml"
    path.write_text(config_text(2))
    watcher = ThreadedWatcher(path)
    next_config = watcher.next_config
    first = next_config()
    assert isinstance(first, ConfigLoaded) and len(first.config.services) == 2
    path.write_text(config_text(2).replace("10.20.0.0/16", "10.20.0.0/33"))
    rejected = next_config()
    assert isinstance(rejected, ConfigRejected)
    _, expected = load_config_files([str(path)], validators=plugin_validators())
    assert [str(d) for d in rejected.diagnostics] == [str(d) for d in expected if d.is_error]
    watcher.inbox.put(file_watcher.RELOAD)
    assert isinstance(next_config(), ConfigRejected)
    watcher.stop()


class DocumentReads:
    """Counts the documents the loaders read (parse) from YAML text, in any thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for module, name in ((reusing, "load_text"), (loading, "load_documents")):
            monkeypatch.setattr(module, name, self._counting(getattr(module, name)))

    def _counting(self, read: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            documents, problems = read(*args, **kwargs)
            self.count += len(documents)
            return documents, problems
        return counted


def test_the_first_load_adopts_the_start_up_parse_and_parses_nothing_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(50))
    checked = DocumentReuse()  # what `metalloid run`'s start-up check does
    loading.load_config([str(path)], reuse=checked)
    reads = DocumentReads(monkeypatch)
    watcher = ThreadedWatcher(path, first=ParsedAtStart(documents=checked.export()), parsed_at_start=True)
    first = watcher.next_config()
    assert isinstance(first, ConfigLoaded)
    assert reads.count == 0
    assert first.config == default_loader("n1")([str(path)])[0]
    reads.count = 0
    path.write_text(config_text(51))
    second = watcher.next_config()
    assert isinstance(second, ConfigLoaded) and len(second.config.services) == 51
    assert reads.count == 2  # svc-50, and the Node it moved down
    watcher.stop()


@pytest.mark.parametrize("first", [ParsedAtStart(), None], ids=["restarted", "never-sent"])
def test_without_a_start_up_parse_the_first_load_reads_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: ParsedAtStart | None) -> None:
    monkeypatch.setattr(file_watcher, "START_PARSE_SECONDS", 0.2)
    path = tmp_path / "c.yaml"
    path.write_text(config_text(50))
    reads = DocumentReads(monkeypatch)
    watcher = ThreadedWatcher(path, first=first, parsed_at_start=True)
    loaded = watcher.next_config()
    assert isinstance(loaded, ConfigLoaded) and len(loaded.config.services) == 50
    assert reads.count == 53
    watcher.stop()


def test_a_stop_before_the_start_up_parse_stops(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(5))
    watcher = ThreadedWatcher(path, first=Control.STOP, parsed_at_start=True)
    watcher.thread.join(timeout=5)
    assert not watcher.thread.is_alive()
    assert not [m for m in iter_queue(watcher.outbox) if not isinstance(m, WorkerHeartbeat)]


def iter_queue(q: queue.Queue[Any]) -> list[Any]:
    found = []
    while not q.empty():
        found.append(q.get_nowait())
    return found


def test_a_loader_that_raises_is_a_rejection_not_a_dead_watcher(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a")

    def explode(paths: Sequence[str]) -> tuple[Config | None, list[Diagnostic]]:
        raise RuntimeError("unforeseen")

    [rejected] = FileWatcherCore([str(path)], load=explode, debounce_seconds=0.1).poll(0.0)
    assert isinstance(rejected, ConfigRejected)
    assert "RuntimeError: unforeseen" in rejected.diagnostics[0].message


def test_content_hash_never_blocks_on_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    assert file_watcher.content_hash([str(fifo)]) != file_watcher.content_hash([str(tmp_path / "missing")])


@pytest.mark.parametrize("garbage", ["Service\x1b", "Ser\x00vice", "!!float 'x'", "[" * 1000],
                         ids=["esc", "nul", "tag", "deep"])
def test_garbage_typed_into_a_running_config_keeps_the_watcher_and_the_last_good_config(
        tmp_path: Path, garbage: str) -> None:
    path = tmp_path / "c.yaml"
    good = config_text(2)
    path.write_text(good)
    watcher = ThreadedWatcher(path)
    next_config = watcher.next_config
    assert isinstance(next_config(), ConfigLoaded)
    path.write_text(good.replace("kind: Service", "kind: " + garbage, 1))
    rejected = next_config()
    assert isinstance(rejected, ConfigRejected) and rejected.diagnostics
    assert all(d.source.file == str(path) and d.source.line >= 1 for d in rejected.diagnostics)
    watcher.inbox.put(file_watcher.RELOAD)  # the same garbage again: still a rejection, still alive
    assert isinstance(next_config(), ConfigRejected)
    assert watcher.thread.is_alive()
    path.write_text(good)
    assert isinstance(next_config(), ConfigLoaded)
    watcher.stop()


def test_heartbeats_continue_during_a_slow_load(tmp_path: Path) -> None:
    # A 1 MiB config parses for seconds, longer than the supervisor's hung timeout.
    path = tmp_path / "c.yaml"
    path.write_text("a")
    started = threading.Event()

    def slow(paths: Sequence[str]) -> tuple[Config | None, list[Diagnostic]]:
        started.set()
        # Busy, like a parser (not sleeping): the beating thread must still get the GIL.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
        return Config(), []

    watcher = ThreadedWatcher(path, heartbeat_seconds=0.1, load=slow)
    assert started.wait(5)
    beats_during_load = 0
    while True:
        message = watcher.outbox.get(timeout=5)
        if isinstance(message, ConfigLoaded):
            break
        beats_during_load += isinstance(message, WorkerHeartbeat)
    assert beats_during_load >= 5  # ~every 0.1 s over the 1 s load, not one before and one after
    watcher.stop()
