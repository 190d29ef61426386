"""A damaged or planted state file is refused with a reason, never reinterpreted; leftovers are cleaned.

Issue 15 found 27 corrupted variants of which 8 started with silently
reinterpreted data. Every variant below must be refused with the file named
and left untouched; the fuzz property in tests/test_fuzz_statefile.py checks
the rule for arbitrary bytes.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from supervisor.allocating import statefile
from supervisor.allocating.statefile import StateFileError


def _file(assignments: Any, **top: Any) -> bytes:
    body = {"format": statefile.FORMAT, "version": 1, "assignments": assignments} | top
    return json.dumps(body).encode()


GOOD_ENTRY = {"ips": ["10.0.0.1"], "pool": "p"}

CORRUPTED = [
    ("empty", b"", "not JSON"),
    ("truncated", _file({"a/b": GOOD_ENTRY})[:-7], "not JSON"),
    ("nul-bytes", b"\x00" * 64, "not JSON"),
    ("not-utf8", b'{"format": "\xff"}', "not JSON"),
    ("utf16", _file({}).decode().encode("utf-16"), "not JSON"),
    ("bom", b"\xef\xbb\xbf" + _file({}), "not JSON"),
    ("top-is-list", b"[]", "not a metalloid assignments file"),
    ("wrong-format", json.dumps({"format": "x", "version": 1, "assignments": {}}).encode(), "not a metalloid"),
    ("version-true", _file({}, version=True), "format version True"),
    ("version-float", _file({}, version=1.0), "format version 1.0"),
    ("version-string", _file({}, version="1"), "format version '1'"),
    ("unknown-top-key", _file({}, extra=1), "unknown top-level key(s) 'extra'"),
    ("duplicate-service", _file({}).replace(b'"assignments": {}',
                                             b'"assignments": {"a/b": {"ips": ["10.0.0.1"], "pool": null}, '
                                             b'"a/b": {"ips": ["10.0.0.2"], "pool": null}}'), "appears twice"),
    ("duplicate-top-key", b'{"format": "metalloid.assignments", "version": 1, "assignments": {}, '
                          b'"assignments": {"a/b": {"ips": ["10.0.0.1"]}}}', "appears twice"),
    ("nan", _file({"a/b": {"ips": ["10.0.0.1"], "pool": None}}).replace(b"null", b"NaN"), "NaN"),
    ("assignments-list", _file([]), "'assignments' is not an object"),
    ("key-without-namespace", _file({"b": GOOD_ENTRY}), "not a 'namespace/name' key"),
    ("key-empty-name", _file({"a/": GOOD_ENTRY}), "not a 'namespace/name' key"),
    ("key-two-slashes", _file({"a/b/c": GOOD_ENTRY}), "not a 'namespace/name' key"),
    ("key-control-char", _file({"a/b\n": GOOD_ENTRY}), "not a 'namespace/name' key"),
    ("entry-list", _file({"a/b": ["10.0.0.1"]}), "not an object"),
    ("ips-missing", _file({"a/b": {"pool": "p"}}), "has no 'ips'"),
    ("ips-string", _file({"a/b": {"ips": "10.0.0.1", "pool": "p"}}), "not a list"),
    ("ips-dict", _file({"a/b": {"ips": {"10.0.0.1": 1}, "pool": "p"}}), "not a list"),
    ("ips-int", _file({"a/b": {"ips": [167772161], "pool": "p"}}), "167772161"),
    ("ips-not-canonical", _file({"a/b": {"ips": ["2001:db8:0:0::1"], "pool": "p"}}), "2001:db8:0:0::1"),
    ("ips-cidr", _file({"a/b": {"ips": ["10.0.0.0/24"], "pool": "p"}}), "10.0.0.0/24"),
    ("ips-two-v4", _file({"a/b": {"ips": ["10.0.0.1", "10.0.0.2"], "pool": "p"}}), "two IPv4 addresses"),
    ("ips-three", _file({"a/b": {"ips": ["10.0.0.1", "fd00::1", "10.0.0.2"], "pool": "p"}}), "at most 2"),
    ("pool-number", _file({"a/b": {"ips": ["10.0.0.1"], "pool": 7}}), "'pool' that is not a pool name"),
    ("entry-unknown-key", _file({"a/b": GOOD_ENTRY | {"node": "n1"}}), "unknown key(s) 'node'"),
    ("deep-nesting", b'{"format": "metalloid.assignments", "version": 1, "assignments": '
                     + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested far deeper"),
]


@pytest.mark.parametrize(("data", "expected"), [c[1:] for c in CORRUPTED], ids=[c[0] for c in CORRUPTED])
def test_corrupted_variants_are_refused_and_kept(tmp_path: Path, data: bytes, expected: str) -> None:
    path = statefile.state_path(tmp_path)
    path.write_bytes(data)
    with pytest.raises(StateFileError) as info:
        statefile.load(tmp_path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message and "mv " in message
    assert path.read_bytes() == data


def test_what_encode_writes_is_accepted(tmp_path: Path) -> None:
    import ipaddress

    from supervisor.config.model import ServiceKey

    state = {ServiceKey(namespace="a", name="dual"): (ipaddress.ip_address("10.0.0.1"),
                                                      ipaddress.ip_address("fd00::1")),
             ServiceKey(namespace="b", name="none-yet"): ()}
    statefile.save(tmp_path, state, {ServiceKey(namespace="a", name="dual"): "pool with spaces"})
    assert statefile.load(tmp_path) == state


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(statefile.encode({}))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    statefile.state_path(state_dir).symlink_to(elsewhere)
    with pytest.raises(StateFileError, match="is a symbolic link"):
        statefile.load(state_dir)


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(statefile.state_path(tmp_path))
    result: list[BaseException | None] = []

    def attempt() -> None:
        try:
            statefile.load(tmp_path)
            result.append(None)
        except StateFileError as exc:
            result.append(exc)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "loading a FIFO state file hangs"
    assert isinstance(result[0], StateFileError) and "FIFO" in str(result[0])


def test_an_oversized_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    with open(statefile.state_path(tmp_path), "wb") as f:
        f.truncate(statefile.MAX_STATE_BYTES + 1)
    with pytest.raises(StateFileError, match=r"over the 16\.0 MiB limit for a state file"):
        statefile.load(tmp_path)


def test_temporaries_left_by_a_killed_writer_are_removed_at_start(tmp_path: Path) -> None:
    statefile.save(tmp_path, {})
    leftovers = [tmp_path / ".assignments.json.123.tmp", tmp_path / ".assignments.json.77.tmp"]
    for leftover in leftovers:
        leftover.write_bytes(b'{"half": ')
    planted = tmp_path / ".assignments.json.9.tmp"
    planted.symlink_to(tmp_path / "victim")
    (tmp_path / "victim").write_text("keep")
    unrelated = tmp_path / "notes.tmp"
    unrelated.write_text("mine")
    removed = statefile.remove_temporaries(tmp_path)
    assert sorted(removed) == sorted([*leftovers, planted])
    assert (tmp_path / "victim").read_text() == "keep" and unrelated.exists()
    assert statefile.load(tmp_path) == {}


def test_write_never_follows_a_link_planted_at_the_temporary_name(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    target = statefile.state_path(tmp_path)
    (tmp_path / f".{target.name}.{os.getpid()}.tmp").symlink_to(victim)
    statefile.save(tmp_path, {})
    assert victim.read_text() == "keep"
    assert statefile.load(tmp_path) == {}
