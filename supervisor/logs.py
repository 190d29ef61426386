"""Logging set-up for every metalloid process: one line per event, the process in each line.

Every process (the supervisor and each worker, which sets up its own logging
after spawn) calls `setup_logging(name, fmt=..., level=...)` once. Code logs a
dotted event name and key=value fields, lazily formatted:

    log.info("ip.assigned service=%s ip=%s pool=%s", key, ip, pool)

text:  2026-11-26T08:00:00.123Z INFO supervisor[1234] ip.assigned service=ns/name ip=10.0.10.10 pool=first-pool
json:  {"ts": "...", "level": "info", "process": "supervisor", "pid": 1234, "logger": "...",
        "event": "ip.assigned", "service": "ns/name", "ip": "10.0.10.10", "pool": "first-pool"}

The JSON fields are parsed back out of the message, so call sites stay the same
in both formats. A value may contain spaces (`reason=no pool covers it`): it
runs until the next ` key=`. A traceback stays on the event's line (escaped
newlines in text, an "exc" field in JSON), so one event is always one line.
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
_RESERVED = frozenset({"ts", "level", "process", "pid", "logger", "event", "message", "exc"})


def parse_level(level: str) -> int:
    """The logging level for a --log-level value, or a ValueError naming the choices."""
    found = LEVELS.get(level.strip().lower())
    if found is None:
        raise ValueError(f"invalid --log-level {level!r}: choose one of debug, info, warning, error, critical")
    return found


def parse_event(message: str) -> tuple[str | None, dict[str, str]]:
    """Split `event.name k=v k2=v two` into the event name and its fields.

    A message that does not start with a dotted event name has no event and no
    fields (it is kept whole as "message"). A value wrapped in double quotes
    loses them.
    """
    head, _, rest = message.partition(" ")
    if not _EVENT.match(head):
        return None, {}
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(rest))
    if matches and rest[: matches[0].start()].strip():
        fields["detail"] = rest[: matches[0].start()].strip()
    elif not matches and rest.strip():
        fields["detail"] = rest.strip()
    for i, found in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(rest)
        value = rest[found.end() : end].strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        key = found.group(1)
        fields[f"field.{key}" if key in _RESERVED else key] = value
    return head, fields


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
        event, fields = parse_event(message)
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
