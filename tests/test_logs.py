"""Log lines: one per event, the process in each, text and JSON, clear errors."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.logs import parse_event, parse_level, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def capture(fmt: str, level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    setup_logging("supervisor", fmt=fmt, level=level, stream=stream)
    return stream


def test_text_line_has_time_level_process_and_event() -> None:
    stream = capture("text")
    logging.getLogger("supervisor.allocating").info("ip.assigned service=%s ip=%s", "ns/name", "10.0.10.10")
    line = stream.getvalue()
    pattern = (r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO supervisor\[(\d+)\] "
               r"ip\.assigned service=ns/name ip=10\.0\.10\.10\n$")
    found = re.match(pattern, line)
    assert found, line
    assert int(found.group(1)) == os.getpid()


def test_json_line_parses_fields_into_keys() -> None:
    stream = capture("json")
    logging.getLogger("supervisor.allocating").warning(
        "ip.pending service=%s reason=%s", "pihole/pi-hole", "10.0.0.200 is not in any pool"
    )
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "warning"
    assert entry["process"] == "supervisor"
    assert entry["pid"] == os.getpid()
    assert entry["logger"] == "supervisor.allocating"
    assert entry["event"] == "ip.pending"
    assert entry["service"] == "pihole/pi-hole"
    assert entry["reason"] == "10.0.0.200 is not in any pool"
    assert entry["ts"].endswith("Z")


@pytest.mark.parametrize(
    ("message", "event", "fields"),
    [
        pytest.param("worker.started name=allocator restarts=2", "worker.started",
                     {"name": "allocator", "restarts": "2"}, id="plain"),
        pytest.param("config.rejected origin=a.yaml error=x.yaml:3: Pool/p: bad = value", "config.rejected",
                     {"origin": "a.yaml", "error": "x.yaml:3: Pool/p: bad = value"}, id="spaces-in-value"),
        pytest.param('peer.dead name="node one" after=0.35', "peer.dead", {"name": "node one", "after": "0.35"},
                     id="quoted"),
        pytest.param("http.listening", "http.listening", {}, id="no-fields"),
        pytest.param("ip.kept extra words service=a", "ip.kept", {"detail": "extra words", "service": "a"},
                     id="leading-words"),
        pytest.param("not an event", None, {}, id="not-dotted"),
        pytest.param("worker.started pid=12 level=bad", "worker.started", {"worker_pid": "12", "worker_level": "bad"},
                     id="reserved-keys-kept-apart"),
        pytest.param(r'peer.dead name="node \"one\" b=2" after=0.35', "peer.dead",
                     {"name": 'node "one" b=2', "after": "0.35"}, id="quoted-with-escaped-quotes"),
        pytest.param('peer.dead name="unclosed after=0.35', "peer.dead", {"name": '"unclosed', "after": "0.35"},
                     id="unclosed-quote-is-plain"),
        pytest.param("lease.lost lease=ns/x error=", "lease.lost", {"lease": "ns/x", "error": ""}, id="empty-value"),
    ],
)
def test_parse_event(message: str, event: str | None, fields: dict[str, str]) -> None:
    assert parse_event(message) == (event, fields)


# Real call sites (grep `log.warning(` with note=/error=/reason=): the format string and its arguments.
HTTP_ERROR = ("HTTPConnectionPool(host='10.0.0.1', port=6443): Max retries exceeded with url: /api/v1/services "
              "(Caused by ProtocolError('Connection aborted.', RemoteDisconnected('closed')))")
REAL_CALLS = [
    pytest.param("watch.failed kind=%s error=%s retry_in=%.2fs", ("Service", ConnectionError(HTTP_ERROR), 0.5),
                 {"kind": "Service", "error": HTTP_ERROR, "retry_in": "0.50s"}, id="watch-error-with-key=value-inside"),
    pytest.param("membership.address_not_local node=%s address=%s note=listening on all addresses; peers send "
                 "heartbeats to %s, so fix the Node's InternalIP if it is not this host's",
                 ("n1", "10.0.10.1", "10.0.10.1"),
                 {"node": "n1", "address": "10.0.10.1",
                  "note": "listening on all addresses; peers send heartbeats to 10.0.10.1, so fix the Node's "
                          "InternalIP if it is not this host's"}, id="note-with-an-argument-inside"),
    pytest.param("worker.running worker=%s pid=%s", ("allocator", 4242),
                 {"worker": "allocator", "worker_pid": "4242"}, id="pid-is-not-the-envelope-pid"),
    pytest.param("event.recorded object=%s/%s reason=%s message=%s",
                 ("dns", "dns-tcp", "IPAllocated", "Assigned IP x=1"),
                 {"object": "dns/dns-tcp", "reason": "IPAllocated", "event_message": "Assigned IP x=1"},
                 id="message-field"),
    pytest.param("worker.killed worker=%s reason=grace period over", ("watcher",),
                 {"worker": "watcher", "reason": "grace period over"}, id="literal-value-with-spaces"),
    pytest.param("config.rejected origin=%s reason=%s diagnostic=%s", ("a.yaml", "changed", "a.yaml:3: Pool/p: x = y"),
                 {"origin": "a.yaml", "reason": "changed", "diagnostic": "a.yaml:3: Pool/p: x = y"}, id="diagnostic"),
    pytest.param("ip.kept because %s service=%s", ("x y", "a/b"), {"detail": "because x y", "service": "a/b"},
                 id="leading-words-with-argument"),
    pytest.param("a.b %(x)s y=%(y)s", ({"x": "1", "y": "v w=z"},), {"detail": "1", "y": "v", "w": "z"},
                 id="mapping-args-fall-back-to-the-message"),
]


@pytest.mark.parametrize(("template", "args", "fields"), REAL_CALLS)
def test_json_keys_come_from_the_format_string(template: str, args: tuple[object, ...],
                                               fields: dict[str, str]) -> None:
    stream = capture("json")
    logging.getLogger("x").warning(template, *args)
    entry = json.loads(stream.getvalue())
    assert entry["pid"] == os.getpid()
    assert {k: v for k, v in entry.items() if k not in {"ts", "level", "process", "pid", "logger", "event"}} == fields


@pytest.mark.parametrize(("template", "args", "fields"), REAL_CALLS)
def test_text_line_is_the_formatted_message(template: str, args: tuple[object, ...], fields: dict[str, str]) -> None:
    stream = capture("text")
    logging.getLogger("x").warning(template, *args)
    expected = template % (args[0] if len(args) == 1 and isinstance(args[0], dict) else args)
    assert stream.getvalue().rstrip("\n").split("] ", 1)[1] == expected


@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"])), min_size=1, max_size=4))
def test_any_argument_value_survives_json(values: list[str]) -> None:
    stream = capture("json")
    template = "t.event " + " ".join(f"k{i}=%s" for i in range(len(values)))
    logging.getLogger("x").info(template, *values)
    entry = json.loads(stream.getvalue())
    assert [entry[f"k{i}"] for i in range(len(values))] == values


def test_a_message_without_event_is_kept_whole_in_json() -> None:
    stream = capture("json")
    logging.getLogger("x").info("Something plain happened")
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "Something plain happened"
    assert "event" not in entry


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_traceback_stays_on_one_line(fmt: str) -> None:
    stream = capture(fmt)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("worker.crashed name=watcher")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "ValueError: boom" in (json.loads(lines[0])["exc"] if fmt == "json" else lines[0])


def test_level_filters() -> None:
    stream = capture("text", level="warning")
    logging.getLogger("x").info("a.b hidden=1")
    logging.getLogger("x").warning("a.b shown=1")
    assert stream.getvalue().count("\n") == 1
    assert "shown=1" in stream.getvalue()


@pytest.mark.parametrize(("level", "expected"), [("DEBUG", logging.DEBUG), ("warn", logging.WARNING)])
def test_levels_are_case_insensitive(level: str, expected: int) -> None:
    assert parse_level(level) == expected


def test_invalid_level_and_format_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"invalid --log-level 'loud'.*debug, info"):
        setup_logging("supervisor", level="loud")
    with pytest.raises(ValueError, match=r"invalid --log-format 'xml'.*text or json"):
        setup_logging("supervisor", fmt="xml")
