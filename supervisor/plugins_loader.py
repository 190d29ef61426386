"""Build a pluggy PluginManager holding every `metalloid.announcers` plugin.

Used by `metalloid check`/`plan` (for the plugins' config validators) and by
each announcer process (a PluginManager does not pickle, so every process that
needs one builds its own with this function).

Plugins are loaded one entry point at a time, not with pluggy's
`load_setuptools_entrypoints` in one go, so one broken plugin (an import error,
a misspelled hook caught by `check_pending()`) is reported by name and, unless
`strict`, skipped instead of taking every other plugin down with it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass

import pluggy

from supervisor import hookspecs

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginLoadFailure:
    """An entry point that could not be loaded or registered, and why."""

    name: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.value}) could not be loaded: {self.reason}"


def build_plugin_manager(
    *, strict: bool = False, failures: list[PluginLoadFailure] | None = None
) -> pluggy.PluginManager:
    """A PluginManager with metalloid's hookspecs and every installed plugin registered.

    With `strict`, the first failing plugin raises; otherwise it is logged,
    appended to `failures` (when given) and skipped. No plugins installed is
    fine: the manager then has no implementations.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for entry_point in sorted(importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP),
                              key=lambda ep: ep.name):
        if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
            pm.register(plugin, name=entry_point.name)
            try:
                pm.check_pending()
            except pluggy.PluginValidationError:
                pm.unregister(name=entry_point.name)
                raise
        except Exception as exc:
            if strict:
                raise
            failure = PluginLoadFailure(name=entry_point.name, value=entry_point.value,
                                        reason=f"{type(exc).__name__}: {exc}")
            log.error("plugin.load_failed name=%s value=%s reason=%s", failure.name, failure.value, failure.reason)
            if failures is not None:
                failures.append(failure)
            continue
        log.debug("plugin.loaded name=%s value=%s", entry_point.name, entry_point.value)
    _load_extra_plugins(pm, strict=strict, failures=failures)
    return pm


EXTRA_PLUGINS_ENV = "METALLOID_EXTRA_PLUGINS"


def _load_extra_plugins(pm: pluggy.PluginManager, *, strict: bool, failures: list[PluginLoadFailure] | None) -> None:
    """Also register the plugins named in $METALLOID_EXTRA_PLUGINS ("module[:attr],...").

    For tests and local development: a plugin that is not installed as a
    distribution (no entry point) can still be loaded, e.g.
    METALLOID_EXTRA_PLUGINS=tests.recording_plugin:plugin. The variable is
    inherited by every worker process, so each announcer child sees it too.
    """
    for spec in filter(None, (s.strip() for s in os.environ.get(EXTRA_PLUGINS_ENV, "").split(","))):
        module_name, _, attr = spec.partition(":")
        if pm.get_plugin(spec) is not None:
            continue
        try:
            plugin = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                plugin = getattr(plugin, part)
            pm.register(plugin, name=spec)
            try:
                pm.check_pending()
            except pluggy.PluginValidationError:
                pm.unregister(name=spec)
                raise
        except Exception as exc:
            if strict:
                raise
            failure = PluginLoadFailure(name=spec, value=f"${EXTRA_PLUGINS_ENV}", reason=f"{type(exc).__name__}: {exc}")
            log.error("plugin.load_failed name=%s value=%s reason=%s", failure.name, failure.value, failure.reason)
            if failures is not None:
                failures.append(failure)
