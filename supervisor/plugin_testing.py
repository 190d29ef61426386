"""The public testing kit for announcer plugins: drive yours the way the host does, without processes.

A plugin's tests import this module and `supervisor.api`, nothing else of
metalloid (`supervisor.plugin_fixtures` adds pytest fixtures on top):

    from supervisor.plugin_testing import AnnouncerDriver, config_from_yaml, make_view, validate

    config = config_from_yaml(YAML)                       # raises ConfigError listing every diagnostic
    assert [str(d) for d in validate(my_plugin, config)] == []
    driver = AnnouncerDriver(my_plugin, "example", node_name="n1", state_dir=tmp_path)
    driver.start()                                        # build with the config's settings, start()
    driver.update(make_view(config, "n1"))                # allocate as metalloid does, update()
    assert driver.announced() == {("default/web", "10.0.0.10")}
    driver.kill()                                         # like SIGKILL: no stop(), the state file stays
    driver.start()                                        # a new instance: start(), then recover(previous)

Everything here runs the host's own code paths: the plugin is loaded through
a real pluggy PluginManager with the same checks (`check_pending`, unknown
`metalloid_*` hooks, the plugin API version), the announcer is driven by the
host's `HostCore` (status checked against the `AnnouncerStatus` contract at
every report) and its recovery file is the host's `RecoveryStore`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from supervisor import hookspecs
from supervisor.allocating.allocator import allocate
from supervisor.announcing.api import (
    Announcer,
    AnnouncerFactory,
    AnnouncerRegistry,
    AnnouncerView,
    Previous,
    SecretUnavailable,
)
from supervisor.announcing.host import HostCore, jsonable, status_problems
from supervisor.announcing.recovery import RecoveryStore
from supervisor.config.diagnostics import Diagnostic, has_errors
from supervisor.config.loading import load_text
from supervisor.config.model import Config
from supervisor.config.parsing import parse_documents
from supervisor.config.validation import validate as validate_core
from supervisor.hookspecs import PROJECT
from supervisor.messages import StatusReport, ViewChanged
from supervisor.plugins_loader import register_plugin

__all__ = [
    "AnnouncerDriver",
    "ConfigError",
    "FakeHost",
    "MetricCall",
    "config_from_yaml",
    "load_plugin",
    "make_view",
    "registered_announcers",
    "validate",
]


class ConfigError(AssertionError):
    """The config has errors; `diagnostics` holds them all (also in the message)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("the config has errors:\n" + "\n".join(str(d) for d in diagnostics))
        self.diagnostics = diagnostics


def config_from_yaml(text: str, *, file: str = "test.yaml", plugin: Any = None) -> Config:
    """Parse and validate YAML text as metalloid does (with `plugin`'s hook, when given); raise on an error."""
    documents, diagnostics = load_text(text, file=file)
    config, problems = parse_documents(documents)
    diagnostics += problems
    diagnostics += validate_core(config)
    if plugin is not None and not has_errors(diagnostics):
        diagnostics += validate(plugin, config)
    if has_errors(diagnostics):
        raise ConfigError(diagnostics)
    return config


def load_plugin(plugin: Any, name: str = "plugin-under-test") -> pluggy.PluginManager:
    """A PluginManager holding `plugin` (a module or object), checked exactly as metalloid loads plugins.

    Raises with the reason (an unknown or misspelled hook, the plugin API
    version) where metalloid would report a load failure.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    register_plugin(pm, plugin, name)
    return pm


def registered_announcers(plugin: Any) -> dict[str, AnnouncerFactory]:
    """What `plugin`'s `metalloid_register_announcers` registers, by protocol."""
    registry = AnnouncerRegistry()
    load_plugin(plugin).hook.metalloid_register_announcers(registry=registry)
    return {name: factory for name in registry.names() if (factory := registry.get(name)) is not None}


def validate(plugin: Any, config: Config) -> list[Diagnostic]:
    """`plugin`'s `metalloid_validate_config` diagnostics for `config` (the check, plan and reload path)."""
    results: list[list[Diagnostic]] = load_plugin(plugin).hook.metalloid_validate_config(config=config)
    return [d for result in results for d in (result or [])]


def make_view(config: Config, node_name: str, *, members: frozenset[str] | None = None, generation: int = 1,
              mode: str = "standalone") -> AnnouncerView:
    """The view the host would send: metalloid's allocation of `config`; `members` default: every Node (or this one)."""
    result = allocate(config)
    alive = members if members is not None else frozenset({node_name, *(n.name for n in config.nodes)})
    return AnnouncerView(node_name=node_name, mode=mode, config=config,
                         assignments=tuple(result.assignments[key] for key in sorted(result.assignments)),
                         members=alive, generation=generation)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricCall:
    """One call an announcer made on the host's metric API."""

    kind: str  # "counter", "gauge", "observe" or "remove"
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


class FakeHost:
    """An `AnnouncerHost` that records metric calls and persists `remember()` like the real one."""

    def __init__(self, node_name: str = "n1", *, settings: Mapping[str, Any] | None = None,
                 store: RecoveryStore | None = None, protocol: str = "test", mode: str = "standalone",
                 secrets: Mapping[tuple[str, str], Mapping[str, bytes]] | None = None) -> None:
        """`secrets`: (namespace, name) -> data, what `read_secret` returns in Kubernetes mode."""
        self._node_name = node_name
        self._mode = mode
        self.secrets = dict(secrets or {})
        self.secret_reads: list[tuple[str, str]] = []
        self._settings = dict(settings or {})
        self.store = store or RecoveryStore(None)
        self.log = logging.getLogger(f"metalloid.plugin.{protocol}")
        self.calls: list[MetricCall] = []
        self.remembered: list[Any] = []

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def settings(self) -> Mapping[str, Any]:
        return self._settings

    @property
    def mode(self) -> str:
        return self._mode

    def read_secret(self, namespace: str, name: str) -> Mapping[str, bytes]:
        """As the real host: 404 for a Secret not in `secrets`, always unavailable in standalone mode."""
        self.secret_reads.append((namespace, name))
        if self._mode != "kubernetes":
            raise SecretUnavailable(0, f"Secret {namespace}/{name}: there is no Kubernetes API in {self._mode} mode")
        if (namespace, name) not in self.secrets:
            raise SecretUnavailable(404, f"reading Secret {namespace}/{name}: 404 NotFound")
        return self.secrets[(namespace, name)]

    def counter(self, name: str, documentation: str, labels: Mapping[str, str], value: float = 1.0) -> None:
        self._record("counter", name, labels, value)

    def gauge(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self._record("gauge", name, labels, value)

    def observe(self, name: str, documentation: str, labels: Mapping[str, str], value: float) -> None:
        self._record("observe", name, labels, value)

    def remove(self, name: str, labels: Mapping[str, str]) -> None:
        self._record("remove", name, labels, 0.0)

    def remember(self, value: Any) -> None:
        self.remembered.append(jsonable(value))
        self.store.remember(jsonable(value))

    def _record(self, kind: str, name: str, labels: Mapping[str, str], value: float) -> None:
        self.calls.append(MetricCall(kind=kind, name=name, labels=tuple(sorted((str(k), str(v)) for k, v in
                                                                                labels.items())), value=value))

    def gauges(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The series of gauge `name` as /metrics would show them now (set minus removed)."""
        series: dict[tuple[tuple[str, str], ...], float] = {}
        for call in self.calls:
            if call.name != name:
                continue
            if call.kind == "gauge":
                series[call.labels] = call.value
            elif call.kind == "remove":
                wanted = set(call.labels)
                for labels in [s for s in series if wanted <= set(s)]:
                    del series[labels]
        return series


class AnnouncerDriver:
    """Runs one announcer of `plugin` as the announcer host process would, in this process.

    `config`: where its AnnouncerConfig's `spec.settings` come from (the
    host hands them over at start). `state_dir`: where the host keeps the
    recovery file (None: no recovery across `kill()`). `mode` and `secrets`:
    the `FakeHost`'s (`host.mode`, what `host.read_secret` finds), to drive
    an announcer as a Kubernetes speaker runs it.
    """

    def __init__(self, plugin: Any, protocol: str, *, node_name: str = "n1", config: Config | None = None,
                 settings: Mapping[str, Any] | None = None, state_dir: str | os.PathLike[str] | None = None,
                 mode: str = "standalone", secrets: Mapping[tuple[str, str], Mapping[str, bytes]] | None = None,
                 ) -> None:
        factory = registered_announcers(plugin).get(protocol)
        if factory is None:
            raise LookupError(f"the plugin registers no announcer for protocol {protocol!r}")
        self.factory = factory
        self.protocol = protocol
        announcer_config = config.announcer(protocol) if config is not None else None
        wanted = settings if settings is not None else (announcer_config.settings if announcer_config else {})
        self.store = RecoveryStore.for_protocol(os.fspath(state_dir) if state_dir is not None else None, protocol)
        self.host = FakeHost(node_name, settings=wanted, store=self.store, protocol=protocol, mode=mode,
                             secrets=secrets)
        self.announcer: Announcer | None = None
        self._core: HostCore | None = None
        self.recovered: Previous | None = None
        self.reports: list[Mapping[str, Any]] = []

    def start(self) -> Announcer:
        """Build a fresh instance, `start()` it, and `recover(previous)` it when the last one was killed."""
        self.recovered = self.store.load()
        announcer = self.factory(self.host)
        if not isinstance(announcer, Announcer):
            raise TypeError(f"{type(announcer).__name__} does not implement the Announcer Protocol")
        self.announcer = announcer
        self._core = HostCore(worker=f"announcer-{self.protocol}", announcer=announcer, store=self.store)
        announcer.start()
        if not self._core.recover():
            self.recovered = None
        self._collect(self._core.report(force=True))
        return announcer

    def update(self, view: AnnouncerView) -> Mapping[str, Any]:
        """`update(view)` then the status the host would report (checked against the contract)."""
        self._collect(self._running().handle(ViewChanged(view=view)))
        return self.status()

    def tick(self, now: float) -> Mapping[str, Any]:
        self._collect(self._running().tick(now))
        return self.status()

    def status(self) -> Mapping[str, Any]:
        """The announcer's status() now, JSON-ready; AssertionError when it breaks the AnnouncerStatus contract."""
        announcer = self._running().announcer
        payload = jsonable(announcer.status())
        problems = status_problems(payload)
        if problems:
            raise AssertionError(f"status() breaks the AnnouncerStatus contract: {'; '.join(problems)}")
        return dict(payload)

    def announced(self) -> set[tuple[str, str]]:
        """(service, ip) of every announcement in status() now."""
        return {(a["service"], a["ip"]) for a in self.status()["announcements"]}

    def stop(self, *, handover: bool = True) -> None:
        """A clean stop, as on SIGTERM: `stop()`, then the recovery file is gone."""
        core = self._running()
        core.announcer.stop(handover=handover)
        self._collect(core.report(force=True))
        self.store.clear()
        self.announcer, self._core = None, None

    def kill(self) -> None:
        """As SIGKILL (or a hang kill): the instance is dropped without `stop()`; the recovery file stays."""
        self._running()
        self.announcer, self._core = None, None

    def _running(self) -> HostCore:
        if self._core is None:
            raise RuntimeError("the announcer is not started; call start() first")
        return self._core

    def _collect(self, messages: Any) -> None:
        for message in messages:
            if isinstance(message, StatusReport):
                self.reports.append(message.payload)
