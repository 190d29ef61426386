"""What a worker process is told when it is spawned: one picklable settings value.

Every worker entry point is `run(settings, inbox, outbox)` and receives a
`WorkerSettings`; each takes the fields it needs. It crosses the spawn boundary
by pickling, so it holds only plain values (no open files, no loggers).
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.roles import KubernetesRole, Mode


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """The settings of one worker process.

    `name` is the worker's name in /status, logs and metrics (e.g. "allocator",
    "announcer-layer2"); `protocol` is set for announcer hosts only.
    """

    name: str
    node_name: str
    mode: Mode = Mode.STANDALONE
    config_paths: tuple[str, ...] = ()
    state_dir: str | None = None
    protocol: str | None = None
    membership_key_file: str | None = None
    insecure: bool = False
    log_format: str = "text"
    log_level: str = "info"
    # How often a worker proves it is alive; the supervisor's hung deadline
    # is several of these (see SupervisorSettings.hung_seconds in supervisor.supervising.specs).
    heartbeat_seconds: float = 0.5
    # File watcher: how often the config files are stat'ed, and how long they
    # must stay unchanged before a reload (editors write in several steps).
    # Also how late a SIGHUP is acted on: the wait for the inbox is resumed
    # after the signal handler (PEP 475), so 0.2 s added ~0.1 s to every
    # reload; a stat every 50 ms is still ~0.1 % of a core.
    poll_seconds: float = 0.05
    debounce_seconds: float = 0.2
    # Announcer hosts: the announcer's timer period; its AnnouncerConfig's
    # spec.settings (canonical JSON, "{}" without one) and hang deadline
    # (None = the supervisor's --hung-timeout).
    tick_seconds: float = 0.05
    announcer_settings_json: str = "{}"
    hang_timeout_seconds: float | None = None
    # Kubernetes mode (controller / speaker): where the API is and what this
    # instance serves. `kubeconfig` None = in-cluster config when in a pod.
    kubeconfig: str | None = None
    api_host: str | None = None
    namespace: str = "metallb-system"
    lb_class: str | None = None
    lease_name: str = "metalloid-controller"
    k8s_role: KubernetesRole | None = None
