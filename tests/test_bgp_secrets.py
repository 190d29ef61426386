"""passwordSecret: read off the announcer's loop, reported when unreadable, re-read when it rotates."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from plugins.bgp.announcer import BGPAnnouncer
from plugins.bgp.frr import FRR, FRRSettings
from plugins.bgp.secrets import PasswordSecrets, SecretError, file_reader
from supervisor.plugin_testing import FakeHost, config_from_yaml, make_view
from tests.test_k8s_bgp_status import CONFIG

LOCKED = ("metallb-system", "missing")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Store:
    """Secrets as a fake API serves them: a value, a failure, or nothing; counts reads."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str | Exception] = {}
        self.reads = 0

    def read(self, namespace: str, name: str) -> str | None:
        self.reads += 1
        found = self.values.get((namespace, name))
        if isinstance(found, Exception):
            raise found
        return found


def test_a_secret_is_read_once_per_refresh_period_and_a_rotation_is_seen() -> None:
    store, clock = Store(), FakeClock()
    secrets = PasswordSecrets(store.read, refresh_seconds=30, clock=clock)
    store.values[LOCKED] = "s3cret"
    assert secrets.want([LOCKED]) is True and secrets.pending(LOCKED)
    assert secrets.cached(LOCKED) is None  # update() never reads: nothing until the worker did
    assert secrets.refresh() == (True, [])
    assert (secrets.cached(LOCKED), secrets.pending(LOCKED), store.reads) == ("s3cret", False, 1)
    assert secrets.want([LOCKED]) is False
    clock.now = 29
    assert secrets.refresh() == (False, []) and store.reads == 1
    store.values[LOCKED] = "rotated"
    clock.now = 30
    assert secrets.refresh() == (True, []) and secrets.cached(LOCKED) == "rotated"


def test_a_failed_read_keeps_the_last_password_and_is_reported_once_per_error() -> None:
    store, clock = Store(), FakeClock()
    secrets = PasswordSecrets(store.read, refresh_seconds=1, clock=clock)
    store.values[LOCKED] = "s3cret"
    secrets.want([LOCKED])
    secrets.refresh()
    store.values[LOCKED] = SecretError("the speaker may not read Secret metallb-system/missing (403)")
    for second in (1, 2):
        clock.now = second
        changed, errors = secrets.refresh()
        assert not changed and secrets.cached(LOCKED) == "s3cret"
        assert errors == ([(LOCKED, "the speaker may not read Secret metallb-system/missing (403)")]
                          if second == 1 else [])  # fmt: skip
    assert secrets.errors == {LOCKED: "the speaker may not read Secret metallb-system/missing (403)"}
    store.values[LOCKED] = "s3cret"
    clock.now = 3
    assert secrets.refresh() == (False, []) and secrets.errors == {}
    # No longer named by any BGPPeer: forgotten, never read again.
    secrets.want([])
    clock.now = 10
    secrets.refresh()
    assert store.reads == 4 and secrets.cached(LOCKED) is None


def test_a_secret_without_a_password_key_is_an_error_naming_it() -> None:
    store = Store()
    secrets = PasswordSecrets(store.read)
    secrets.want([LOCKED])
    changed, errors = secrets.refresh()
    assert changed  # tried and failed: the skipped peer is now an error to report
    assert errors == [(LOCKED, "Secret metallb-system/missing has no non-empty `password` key")]


def test_standalone_files_name_where_they_were_looked_for(tmp_path: Path) -> None:
    read = file_reader(tmp_path)
    with pytest.raises(SecretError, match=f"looked in {tmp_path}/missing"):
        read(*LOCKED)
    (tmp_path / "missing").write_text("from-file\n")
    assert read(*LOCKED) == "from-file"


class RecordingFRR(FRR):
    """An FRR that records what would be applied and answers no neighbors (no daemons, no vtysh)."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(FRRSettings(run_dir=tmp_path / "frr", manage_daemons=False, poll_seconds=0.05))
        self.applied: list[str] = []
        self.lock = threading.Lock()

    def apply(self, text: str, timeout: float = 120.0) -> None:
        with self.lock:
            self.applied.append(text)

    def show(self, command: str, timeout: float = 10.0) -> Any:
        return {}

    def dead(self) -> list[str]:
        return []


def wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_announcer_reads_the_secret_in_its_worker_and_applies_the_password_once_read(tmp_path: Path) -> None:
    store = Store()
    store.values[LOCKED] = "s3cret"
    started = threading.Event()

    def slow_read(namespace: str, name: str) -> str | None:
        started.wait(5)  # update() returns before any read: it never waits on the API
        return store.read(namespace, name)

    frr = RecordingFRR(tmp_path)
    announcer = BGPAnnouncer(FakeHost("n1"), frr=frr, secrets=PasswordSecrets(slow_read, refresh_seconds=0.2))
    announcer.start()
    try:
        announcer.update(make_view(config_from_yaml(CONFIG), "n1"))
        started.set()
        wait(lambda: any("neighbor 10.0.0.3 password s3cret" in t for t in frr.applied), "the password applied")
        # The first text applied already has it: the worker reads before it reloads.
        assert "neighbor 10.0.0.3" in frr.applied[0]
        store.values[LOCKED] = "rotated"
        wait(lambda: "neighbor 10.0.0.3 password rotated" in frr.applied[-1], "the rotated password applied")
        store.values[LOCKED] = SecretError("Secret metallb-system/missing does not exist")
        time.sleep(0.5)
        assert "neighbor 10.0.0.3 password rotated" in frr.applied[-1]  # the last good value stays
        sessions = {s["peer"]: s for s in announcer.status()["sessions"]}  # type: ignore[typeddict-item]
        assert not sessions["locked"]["state"].startswith("not configured")
    finally:
        announcer.stop(handover=False)


def test_in_kubernetes_the_password_comes_from_the_host_s_read_secret(tmp_path: Path) -> None:
    """Plugin API 1.2: the plugin asks its host (`read_secret`) and maps the host's errors to fixes."""
    from plugins.bgp.secrets import kubernetes_reader

    host = FakeHost("n1", mode="kubernetes", secrets={LOCKED: {"password": b"s3cret", "username": b"x"}})
    read = kubernetes_reader(host)
    assert read(*LOCKED) == "s3cret"
    with pytest.raises(SecretError, match="Secret metallb-system/other does not exist: create it"):
        read("metallb-system", "other")
    host.secrets[("metallb-system", "empty")] = {"username": b"x"}
    assert read("metallb-system", "empty") is None  # PasswordSecrets reports "no non-empty `password` key"
    assert host.secret_reads == [LOCKED, ("metallb-system", "other"), ("metallb-system", "empty")]


def test_the_mode_is_the_host_s_not_the_environment_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A speaker outside a pod (--kubeconfig) is Kubernetes; `metalloid run` inside one is standalone."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    speaker = BGPAnnouncer(FakeHost("n1", mode="kubernetes"), frr=RecordingFRR(tmp_path))
    assert speaker.mode == "kubernetes" and speaker.frr.settings.secrets_dir is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    standalone = BGPAnnouncer(FakeHost("n1", mode="standalone"))
    assert standalone.mode == "standalone"
    assert standalone.frr.settings.manage_daemons is True  # standalone's default: FRR is ours to run
    assert str(standalone.frr.settings.secrets_dir) == "/etc/metalloid/bgp-secrets"
