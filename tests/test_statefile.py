"""The state file: round trip, clear refusal of corrupt/incompatible files, crash consistency."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from supervisor.allocating import statefile
from supervisor.allocating.statefile import StateFileError
from supervisor.config.model import IPAddress, ServiceKey


def _state(n: int, salt: int = 0) -> dict[ServiceKey, tuple[IPAddress, ...]]:
    return {
        ServiceKey(namespace="ns", name=f"svc-{i}"): (ipaddress.ip_address(f"10.{salt % 250}.{i // 250}.{i % 250}"),)
        for i in range(n)
    }


def test_round_trip(tmp_path: Path) -> None:
    state = _state(3) | {ServiceKey(namespace="a", name="dual"): (ipaddress.ip_address("10.0.0.1"),
                                                                   ipaddress.ip_address("fd00::1"))}
    statefile.save(tmp_path, state)
    assert statefile.load(tmp_path) == state


def test_missing_file_is_a_first_start(tmp_path: Path) -> None:
    assert statefile.load(tmp_path / "nothing-here") == {}


def test_same_state_same_bytes() -> None:
    assert statefile.encode(_state(5)) == statefile.encode(dict(reversed(list(_state(5).items()))))


@pytest.mark.parametrize("n", [0, 1, 30])
def test_one_line_per_service_and_the_same_json_as_before(n: int) -> None:
    # Mixed namespaces and a non-ASCII name, so the order and the escaping are both exercised.
    state = _state(n) | ({ServiceKey(namespace="a", name="caf\u00e9"): (ipaddress.ip_address("fd00::1"),)} if n else {})
    pools = {key: "first-pool" for key in list(state)[::2]}
    data = statefile.encode(state, pools)
    # What the file held when it was written with json.dumps(sort_keys=True, indent=1): the same document.
    body = {"format": statefile.FORMAT, "version": statefile.VERSION,
            "assignments": {str(k): {"ips": [str(ip) for ip in v], "pool": pools.get(k)} for k, v in state.items()}}
    assert json.loads(data) == body
    assert data.decode().isascii()
    lines = data.decode().splitlines()
    assert sum(line.startswith('  "') for line in lines) == len(state)  # one line per Service, grep-able
    keys = [json.loads("{" + line.rstrip(",") + "}").popitem()[0] for line in lines if line.startswith('  "')]
    assert keys == sorted(keys, key=lambda k: tuple(k.split("/", 1)))  # namespace, then name
    assert statefile.decode(data) == state


BAD = [
    ("truncated", b'{"format": "metalloid.assignments", "ver', "corrupt"),
    ("not-ours", json.dumps({"hello": 1}).encode(), "not a metalloid assignments file"),
    ("newer-version", json.dumps({"format": statefile.FORMAT, "version": 99, "assignments": {}}).encode(),
     "format version 99"),
    ("bad-ip", json.dumps({"format": statefile.FORMAT, "version": 1,
                           "assignments": {"a/b": {"ips": ["10.0.0.300"]}}}).encode(), "no valid 'ips'"),
]


@pytest.mark.parametrize(("data", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_unusable_file_is_refused_clearly_and_kept(tmp_path: Path, data: bytes, expected: str) -> None:
    path = statefile.state_path(tmp_path)
    path.write_bytes(data)
    with pytest.raises(StateFileError) as info:
        statefile.load(tmp_path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message and "mv " in message  # names the file and the fix
    assert path.read_bytes() == data  # never silently discarded


def test_crash_consistency_kill_at_random_moments(tmp_path: Path) -> None:
    """Kill a writer at random moments 200 times: the file is always the old or the new state."""
    states = [statefile.encode(_state(500, salt)) for salt in range(2)]
    path = statefile.state_path(tmp_path)
    statefile.write_atomic(path, states[0])
    # How long a forked writer takes here, fork included, so the kills spread over all of it: timing
    # the write in this process alone left the window shorter than fork + write once writes got faster,
    # and then no kill landed after the rename.
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            statefile.write_atomic(path, states[1])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    write_seconds = time.perf_counter() - started
    assert path.read_bytes() == states[1]
    statefile.write_atomic(path, states[0])
    rng = random.Random(1234)
    current, landed = 0, 0
    for _ in range(200):
        new = 1 - current
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                statefile.write_atomic(path, states[new])
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, write_seconds * 2))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        data = path.read_bytes()
        assert data in (states[current], states[new])
        statefile.decode(data)  # parses
        if data == states[new]:
            current = new
            landed += 1
    # Both outcomes happened, so the kills really did land before and after the rename.
    assert 0 < landed < 200


def test_check_writable_names_the_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateFileError, match=str(blocker)):
        statefile.check_writable(blocker / "sub")
