"""A recording announcer plugin for tests, loaded through $METALLOID_EXTRA_PLUGINS.

    METALLOID_EXTRA_PLUGINS=tests.recording_plugin:plugin

registers protocols "recording" and "recording2" (two independent announcers)
and "crashy" (raises in update() when $METALLOID_CRASHY_MODE=raise, sleeps
forever when it is "hang", computes forever when it is "spin", and when it is
"starved" computes for $METALLOID_CRASHY_CPU seconds of CPU on one core shared
with four busy processes, so that it takes five times that in wall time).
When $METALLOID_RECORDING_LOG names a file, every call is appended to it as
one JSON line (pid, protocol, call, and for update the assignments), so a test
can see what a real announcer process was told.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from supervisor.api import AnnouncerHost, AnnouncerRegistry, AnnouncerView, hookimpl
from supervisor.supervising.child import die_with_parent


class RecordingAnnouncer:
    protocol: ClassVar[str] = "recording"

    def __init__(self, host: AnnouncerHost) -> None:
        self.host = host
        self.calls: list[tuple[str, Any]] = []
        self.view: AnnouncerView | None = None
        self.started = False

    def _record(self, call: str, **fields: Any) -> None:
        self.calls.append((call, fields))
        path = os.environ.get("METALLOID_RECORDING_LOG")
        if path:
            line = json.dumps({"pid": os.getpid(), "protocol": self.protocol, "call": call, **fields})
            with open(path, "a") as f:
                f.write(line + "\n")

    def start(self) -> None:
        self.started = True
        self._record("start")

    def update(self, view: AnnouncerView) -> None:
        self.view = view
        assignments = {str(a.service): [str(ip) for ip in a.ips] for a in view.assignments}
        self._record("update", generation=view.generation, assignments=assignments, members=sorted(view.members))
        for a in view.assignments:
            for ip in a.ips:
                self.host.gauge("metallb_speaker_announced", "", {"service": str(a.service),
                                "protocol": self.protocol, "node": self.host.node_name, "ip": str(ip)}, 1.0)

    def tick(self, now: float) -> None:
        pass

    def status(self) -> Mapping[str, Any]:
        announcements = []
        if self.view is not None:
            announcements = [
                {"service": str(a.service), "ip": str(ip), "protocol": self.protocol, "node": self.host.node_name}
                for a in self.view.assignments for ip in a.ips
            ]
        return {"announcements": announcements, "sockets_ready": self.started,
                "updates": sum(1 for c, _ in self.calls if c == "update")}

    def stop(self, *, handover: bool) -> None:
        self._record("stop", handover=handover)


class SecondRecordingAnnouncer(RecordingAnnouncer):
    protocol: ClassVar[str] = "recording2"


class CrashyAnnouncer(RecordingAnnouncer):
    protocol: ClassVar[str] = "crashy"

    def update(self, view: AnnouncerView) -> None:
        super().update(view)
        mode = os.environ.get("METALLOID_CRASHY_MODE", "raise")
        if mode == "hang":
            while True:
                time.sleep(1)
        if mode == "spin":
            while True:
                pass
        if mode == "starved":
            self._starved(float(os.environ.get("METALLOID_CRASHY_CPU", "0.6")))
            return
        raise RuntimeError("crashy announcer fails on purpose")

    def _starved(self, cpu_seconds: float) -> None:
        """A slow update on a loaded node: `cpu_seconds` of work while four busy processes share its core."""
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        rivals = []
        for _ in range(4):
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:  # a rival: busy on the same core until killed, or until this announcer dies
                die_with_parent(parent)
                while True:
                    pass
            rivals.append(pid)
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            while time.thread_time() - cpu < cpu_seconds:
                pass
        finally:
            for pid in rivals:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self._record("starved", cpu=round(time.thread_time() - cpu, 3), wall=round(time.monotonic() - wall, 3))


class _Plugin:
    @hookimpl
    def metalloid_register_announcers(self, registry: AnnouncerRegistry) -> None:
        registry.add(RecordingAnnouncer)
        registry.add(SecondRecordingAnnouncer)
        registry.add(CrashyAnnouncer)


plugin = _Plugin()


class _Misspelled:
    """A plugin with a misspelled hook (for the load-error tests): METALLOID_EXTRA_PLUGINS=...:misspelled."""

    @hookimpl
    def metalloid_validate_confg(self, config: object) -> list[object]:
        return []


misspelled = _Misspelled()
