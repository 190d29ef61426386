"""What the supervisor runs: the worker specs and the supervisor's own settings (frozen data).

It exists so the commands (`run`, `controller`, `speaker`) can describe their
workers without importing the process shell. It does not start, watch or
route anything: `supervisor.py` and its parts do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from supervisor.config.model import Config
from supervisor.messages import ToWorker
from supervisor.roles import Mode, Role
from supervisor.supervising.backoff import BackoffSettings
from supervisor.supervising.settings import AnnouncerSettings, WorkerSettings
from supervisor.supervising.state import ANNOUNCER


class FirstMessage:
    """A worker's first inbox message: `first` at its first spawn, `after` at every later one.

    `take()` hands `first` over once and forgets it, so the supervisor keeps
    no copy (the start-up parse of 1,000 Services is ~0.4 MB) and a restarted
    worker gets `after`: it starts from nothing, as every restarted worker does.
    """

    def __init__(self, first: ToWorker, *, after: ToWorker) -> None:
        self._first: ToWorker | None = first
        self._after = after

    def take(self) -> ToWorker:
        message = self._first if self._first is not None else self._after
        self._first = None
        return message


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """A worker to run: `entry` is "module:function" taking (settings, inbox, outbox).

    `needs_peers`: start it only once a loaded config lists a Node other than
    this one (standalone membership: alone, the live members are this node,
    and its process would be memory for nothing). Decided on every config, so
    a reload that adds the first peer starts it; once started it stays, and
    follows later configs itself.

    `first_message`: put first in the worker's inbox at every spawn (the file
    watcher of `metalloid run` is given the start-up check's parse this way).
    """

    name: str
    role: Role
    entry: str
    settings: WorkerSettings
    needs_peers: bool = False
    first_message: FirstMessage | None = None

    @property
    def protocol(self) -> str:
        """An announcer's protocol (what /status and the metrics call it); any other worker's name."""
        if isinstance(self.settings, AnnouncerSettings) and self.settings.protocol:
            return self.settings.protocol
        return self.name

    @property
    def hang_timeout_seconds(self) -> float | None:
        """An announcer's own hang deadline (its AnnouncerConfig's); None: the supervisor's."""
        return self.settings.hang_timeout_seconds if isinstance(self.settings, AnnouncerSettings) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorSettings:
    node_name: str
    mode: Mode = Mode.STANDALONE
    version: str = "0"
    grace_seconds: float = 5.0
    # No heartbeat for this long = hung (six missed 0.5 s heartbeats; an
    # allocation of thousands of services stays well below it).
    hung_seconds: float = 3.0
    # The start window: long enough to catch a worker dying in its first
    # message, short enough that kill -9 → RUNNING stays under a second.
    # It gates readiness only (/readyz, an announcer's READY), never what is
    # announced: announcers get views while STARTING, and which IPs they answer
    # for is the election's and membership's startup grace's. At start every
    # worker is spawned at once and the window ends long before the watcher's
    # first config and allocation (BENCHMARKS.md, start → ready), so a shorter
    # one would not make a node ready sooner, only trust a crash-looping worker
    # earlier.
    start_seconds: float = 0.3
    # Spawn to first heartbeat: a fresh interpreter plus imports, slow on a
    # busy node without bytecode caches; slow is not hung.
    start_deadline_seconds: float = 15.0
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    # Announcers follow the config (`enabling.decide`) when a template is set:
    # each one's AnnouncerSettings is this with its name, protocol and
    # AnnouncerConfig filled in. None: exactly the announcer specs given run.
    announcer_template: AnnouncerSettings | None = None
    # --announcers: the complete list, overriding the config.
    requested_announcers: tuple[str, ...] | None = None
    # The allocator's per-pool gauges (metallb_allocator_*): exported by the
    # controller and `metalloid run`, not by speakers (MetalLB's split: one
    # series per pool in the cluster, not one per node).
    pool_metrics: bool = True


def announcer_spec(template: AnnouncerSettings, config: Config | None, protocol: str) -> WorkerSpec:
    """The worker that runs announcer `protocol` with its AnnouncerConfig from `config`."""
    announcer = config.announcer(protocol) if config is not None else None
    name = f"announcer-{protocol}"
    settings = replace(
        template, name=name, protocol=protocol,
        announcer_settings_json=announcer.settings_json if announcer else "{}",
        hang_timeout_seconds=announcer.hang_timeout_seconds if announcer else None,
    )
    return WorkerSpec(name=name, role=ANNOUNCER, entry="supervisor.announcing.host:run", settings=settings)
