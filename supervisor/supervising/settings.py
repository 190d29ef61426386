"""What a worker process is told when it is spawned: one picklable settings value per role.

Every worker entry point is `run(settings, inbox, outbox)`. `WorkerSettings`
holds what every worker needs (its name, the node, the mode, logging, the
heartbeat); each role's settings type adds that role's fields only, so a
worker cannot read, and a command cannot set, another role's option. The
values cross the spawn boundary by pickling, so they hold only plain values
(no open files, no loggers) and are frozen.

| role | settings | entry point |
| --- | --- | --- |
| file watcher | `WatcherSettings` | `watching/file_watcher.py:run` |
| allocator | `AllocatorSettings` | `allocating/worker.py:run` |
| membership | `MembershipSettings` | `membership/worker.py:run` |
| announcer host | `AnnouncerSettings` | `announcing/host.py:run` |
| Kubernetes controller | `ControllerSettings` | `kubernetes/worker.py:run` |
| Kubernetes speaker's watcher | `SpeakerSettings` | `kubernetes/worker.py:run` |
| the speaker's status allocator, the controller's allocator | `WorkerSettings` | |
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.roles import KubernetesRole, Mode


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSettings:
    """What every worker is told: `name` is its name in /status, logs and metrics (e.g. "allocator")."""

    name: str
    node_name: str
    mode: Mode = Mode.STANDALONE
    log_format: str = "text"
    log_level: str = "info"
    # How often a worker proves it is alive; the supervisor's hung deadline
    # is several of these (see SupervisorSettings.hung_seconds in supervisor.supervising.specs).
    heartbeat_seconds: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class WatcherSettings(WorkerSettings):
    """The file watcher: which files make the config, and how it notices they changed."""

    config_paths: tuple[str, ...] = ()
    # How often the config files are stat'ed, and how long they must stay
    # unchanged before a reload (editors write in several steps). Also how
    # late a SIGHUP is acted on: the wait for the inbox is resumed after the
    # signal handler (PEP 475), so 0.2 s added ~0.1 s to every reload; a stat
    # every 50 ms is still ~0.1 % of a core.
    poll_seconds: float = 0.05
    debounce_seconds: float = 0.2
    # `metalloid run`: the supervisor puts a `ParsedAtStart` first in the
    # inbox at every spawn (the start-up check's parse the first time, empty
    # after); the watcher takes it before its first load.
    parsed_at_start: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocatorSettings(WorkerSettings):
    """The standalone allocator: where the assignments persist (None: nowhere, tests)."""

    state_dir: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipSettings(WorkerSettings):
    """The membership worker: the heartbeats' shared key (read at start) or running without one."""

    membership_key_file: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncerSettings(WorkerSettings):
    """One announcer host: its protocol and what its AnnouncerConfig says.

    `protocol` is "" in `SupervisorSettings.announcer_template` only; each
    announcer's own settings name it (`specs.announcer_spec`).
    """

    protocol: str = ""
    # Where the announcer remembers what it announced, for the cleanup after a kill.
    state_dir: str | None = None
    # The announcer's timer period.
    tick_seconds: float = 0.05
    # Its AnnouncerConfig's spec.settings (canonical JSON, "{}" without one)
    # and hang deadline (None = the supervisor's --hung-timeout).
    announcer_settings_json: str = "{}"
    hang_timeout_seconds: float | None = None
    # Kubernetes mode: where the API is, for `AnnouncerHost.read_secret` (as KubernetesSettings).
    kubeconfig: str | None = None
    api_host: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KubernetesSettings(WorkerSettings):
    """A Kubernetes watcher: where the API is (`kubeconfig` None = in-cluster config when in a pod)."""

    mode: Mode = Mode.KUBERNETES
    kubeconfig: str | None = None
    api_host: str | None = None
    namespace: str = "metallb-system"


@dataclass(frozen=True, slots=True, kw_only=True)
class ControllerSettings(KubernetesSettings):
    """The controller: which Services it serves (`--lb-class`) and the Lease its replicas elect on."""

    lb_class: str | None = None
    lease_name: str = "metalloid-controller"

    @property
    def k8s_role(self) -> KubernetesRole:
        return KubernetesRole.CONTROLLER


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeakerSettings(KubernetesSettings):
    """The speaker's watcher: nothing beyond the API's whereabouts (the node is `node_name`)."""

    @property
    def k8s_role(self) -> KubernetesRole:
        return KubernetesRole.SPEAKER
