"""Logging set-up for every metalloid process: one line per event, the process in each line.

Every process (the supervisor and each worker, which sets up its own logging
after spawn) calls `setup_logging(name, fmt=..., level=...)` once. Code logs a
dotted event name and key=value fields, lazily formatted:

    log.info("ip.assigned service=%s ip=%s pool=%s", key, ip, pool)

text:  2026-11-26T08:00:00.123Z INFO supervisor[1234] ip.assigned service=ns/name ip=10.0.10.10 pool=first-pool
json:  {"ts": "...", "level": "info", "process": "supervisor", "pid": 1234, "logger": "...",
        "event": "ip.assigned", "service": "ns/name", "ip": "10.0.10.10", "pool": "first-pool"}

The JSON keys come from the call's format string and each value from its
arguments, so a value may hold anything, spaces and `word=` included (an
exception's text: `HTTPConnectionPool(host='10.0.0.1', port=6443): ...`), and
still be one value; the text line is exactly the formatted message. A message
without arguments is parsed back: a value runs until the next ` key=`, or is
double-quoted (`name="node one"`, `\\"` inside). A field named like an envelope
key (`pid`, `message`, ...) gets the event's first word as prefix
(`worker.running pid=` -> "worker_pid"). A traceback stays on the event's line
(escaped newlines in text, an "exc" field in JSON), so one event is always one line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
FORMATS = ("text", "json")

_EVENT = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")
_FIELD = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_.-]*)=")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"(?=\s|$)')
# One printf-style conversion: (mapping key) flags width .precision length type.
_CONVERSION = re.compile(r"%(\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_RESERVED = frozenset({"ts", "level", "process", "pid", "logger", "event", "message", "exc"})


def parse_level(level: str) -> int:
    """The logging level for a --log-level value, or a ValueError naming the choices."""
    found = LEVELS.get(level.strip().lower())
    if found is None:
        raise ValueError(f"invalid --log-level {level!r}: choose one of debug, info, warning, error, critical")
    return found


def _key(event: str, key: str) -> str:
    """`key`, or `<first word of the event>_key` where it would overwrite an envelope key."""
    return f"{event.split('.', 1)[0]}_{key}" if key in _RESERVED else key


def parse_event(message: str) -> tuple[str | None, dict[str, str]]:
    """Split `event.name k=v k2=v two` into the event name and its fields.

    A message that does not start with a dotted event name has no event and no
    fields (it is kept whole as "message"). Words before the first key are the
    "detail". A value runs until the next ` key=`, unless it is wrapped in
    double quotes, which it loses (and `\\"` inside becomes `"`).
    """
    head, _, rest = message.partition(" ")
    if not _EVENT.match(head):
        return None, {}
    fields: dict[str, str] = {}
    found = _FIELD.search(rest)
    leading = rest[: found.start()] if found else rest
    if leading.strip():
        fields["detail"] = leading.strip()
    while found:
        start = found.end()
        quoted = _QUOTED.match(rest, start)
        if quoted:
            value = re.sub(r"\\(.)", r"\1", quoted.group(1))
            following = _FIELD.search(rest, quoted.end())
        else:
            following = _FIELD.search(rest, start)
            value = rest[start : following.start() if following else len(rest)].strip()
        fields[_key(head, found.group(1))] = value
        found = following
    return head, fields


def record_fields(record: logging.LogRecord) -> tuple[str | None, dict[str, str]]:
    """The event and fields of a record: keys from its format string, values from its arguments.

    Falls back to `parse_event` on the formatted message when the record has no
    arguments, or a format string this cannot split (no event name up front,
    `%(name)s` or `*` conversions, a count that does not match the arguments).
    """
    template, args = record.msg, record.args
    if isinstance(template, str) and isinstance(args, tuple) and args:
        found = _template_fields(template, args)
        if found is not None:
            return found
    return parse_event(record.getMessage())


def _template_fields(template: str, args: tuple[object, ...]) -> tuple[str, dict[str, str]] | None:
    head, _, rest = template.partition(" ")
    if not _EVENT.match(head):
        return None
    keys = list(_FIELD.finditer(rest))
    pieces: list[tuple[str | None, str]] = [(None, rest[: keys[0].start()] if keys else rest)]
    pieces += [(k.group(1), rest[k.end() : keys[i + 1].start() if i + 1 < len(keys) else len(rest)])
               for i, k in enumerate(keys)]
    fields: dict[str, str] = {}
    used = 0
    for key, piece in pieces:
        piece = piece.strip()
        if len(piece) >= 2 and piece[0] == piece[-1] == '"':
            piece = piece[1:-1]
        conversions = [c for c in _CONVERSION.finditer(piece) if c.group(4) != "%"]
        if any(c.group(1) or c.group(2) == "*" or c.group(3) == "*" for c in conversions):
            return None
        try:
            value = piece % args[used : used + len(conversions)]
        except (TypeError, ValueError):
            return None
        used += len(conversions)
        if key is not None:
            fields[_key(head, key)] = value
        elif value:
            fields["detail"] = value
    return (head, fields) if used == len(args) else None


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += " exc=" + self.formatException(record.exc_info)
        elif record.exc_text:
            message += " exc=" + record.exc_text
        message = message.replace("\\", "\\\\").replace("\n", "\\n")
        return f"{_timestamp(record.created)} {record.levelname} {self.process_name}[{record.process}] {message}"


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "pid": record.process,
            "logger": record.name,
        }
        event, fields = record_fields(record)
        if event is None:
            entry["message"] = message
        else:
            entry["event"] = event
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup_logging(process_name: str, *, fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log record of this process to stderr (or `stream`) in `fmt`.

    Replaces any handler set before (a restarted worker calls it again).
    Raises ValueError for an unknown format or level, naming the choices.
    """
    numeric = parse_level(level)
    if fmt not in FORMATS:
        raise ValueError(f"invalid --log-format {fmt!r}: choose text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter(process_name) if fmt == "text" else JsonFormatter(process_name))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)


def add_logging_arguments(parser: Any) -> None:
    """Add --log-format and --log-level to an argparse parser (run, controller, speaker)."""
    parser.add_argument("--log-format", choices=FORMATS, default="text", help="log line format (default: text)")
    parser.add_argument(
        "--log-level", default="info", help="debug, info, warning, error or critical (default: info)"
    )
