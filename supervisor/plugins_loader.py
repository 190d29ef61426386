"""Build a pluggy PluginManager holding every `metalloid.announcers` plugin.

Used by `metalloid check`/`plan` (for the plugins' config validators) and by
each announcer process (a PluginManager does not pickle, so every process that
needs one builds its own with this function).

Plugins are loaded one entry point at a time, not with pluggy's
`load_setuptools_entrypoints` in one go, so one broken plugin (an import error,
a misspelled hook, a plugin API version this metalloid does not provide) is
reported by name (and hook) and, unless `strict`, skipped instead of taking
every other plugin down with it.

A misspelled hook is caught twice: pluggy's `check_pending()` for a function
marked `@hookimpl` under a name no hookspec has, and `_unknown_hooks` for a
`metalloid_*` function that is not a hook at all (a missing `@hookimpl`, or
a typo pluggy never sees).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import logging
import os
from dataclasses import dataclass
from typing import Any

import pluggy

from supervisor import hookspecs
from supervisor.api import METALLOID_PLUGIN_API
from supervisor.plugin_names import EXTRA_PLUGINS_ENV

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginLoadFailure:
    """An entry point that could not be loaded or registered, and why."""

    name: str
    value: str
    reason: str
    # The hook at fault, for a misspelled or unknown one; None otherwise.
    hook: str | None = None

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.value}) could not be loaded: {self.reason}"

    def as_dict(self) -> dict[str, str | None]:
        return {"plugin": self.name, "value": self.value, "hook": self.hook, "reason": self.reason}


class PluginRejected(Exception):
    """A plugin that loaded but cannot be used: an unknown hook, an API version we lack."""

    def __init__(self, message: str, *, hook: str | None = None) -> None:
        super().__init__(message)
        self.hook = hook


def check_api_version(plugin: Any) -> None:
    """Raise PluginRejected unless this metalloid provides the plugin API the plugin declares it needs.

    A plugin declares `METALLOID_PLUGIN_API_REQUIRED = (major, minor)` in its
    module; compatible means the same major and a minor no newer than ours
    (docs/plugins.md, "Compatibility"). No declaration means (1, 0).
    """
    required = getattr(plugin, "METALLOID_PLUGIN_API_REQUIRED", (1, 0))
    if (not isinstance(required, tuple) or len(required) != 2
            or not all(isinstance(part, int) and not isinstance(part, bool) for part in required)):
        raise PluginRejected(f"METALLOID_PLUGIN_API_REQUIRED = {required!r} is not a (major, minor) tuple of ints")
    have = METALLOID_PLUGIN_API
    if required[0] != have[0] or required[1] > have[1]:
        raise PluginRejected(
            f"needs plugin API {required[0]}.{required[1]}, this metalloid provides {have[0]}.{have[1]}; "
            + ("upgrade metalloid" if required > have else "use a release of the plugin made for this API"))


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> None:
    """Raise PluginRejected for a `metalloid_*` function that is not one of our hooks."""
    known = {name for name in dir(hookspecs) if name.startswith("metalloid_")}
    implemented = {impl.function for caller in pm.hook.__dict__.values() if isinstance(caller, pluggy.HookCaller)
                   for impl in caller.get_hookimpls() if impl.plugin is plugin}
    for name in sorted(dir(plugin)):
        value = getattr(plugin, name, None)
        if not name.startswith("metalloid_") or not callable(value):
            continue
        if name in known and value in implemented:
            continue
        if name in known:
            raise PluginRejected(f"function {name} is not marked @hookimpl, so it would never be called; "
                                 "decorate it with supervisor.api.hookimpl", hook=name)
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]}?" if close else f"the hooks are: {', '.join(sorted(known))}"
        raise PluginRejected(f"unknown hook {name}; {hint}", hook=name)


def register_plugin(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    """Register `plugin` under `name`, or raise with the reason (and leave `pm` without it)."""
    check_api_version(plugin)
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
        _unknown_hooks(pm, plugin)
    except pluggy.PluginValidationError as exc:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        raise PluginRejected(str(exc), hook=getattr(exc, "hook", None) or _hook_in(str(exc))) from exc
    except PluginRejected:
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        raise


def _hook_in(message: str) -> str | None:
    return next((word.strip("'\".,:") for word in message.split() if word.strip("'\".,:").startswith("metalloid_")),
                None)


def _failure(name: str, value: str, exc: Exception) -> PluginLoadFailure:
    hook = exc.hook if isinstance(exc, PluginRejected) else None
    reason = str(exc) if isinstance(exc, PluginRejected) else f"{type(exc).__name__}: {exc}"
    return PluginLoadFailure(name=name, value=value, reason=reason, hook=hook)


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
            register_plugin(pm, entry_point.load(), entry_point.name)
        except Exception as exc:
            if strict:
                raise
            failure = _failure(entry_point.name, entry_point.value, exc)
            log.error("plugin.load_failed name=%s value=%s reason=%s", failure.name, failure.value, failure.reason)
            if failures is not None:
                failures.append(failure)
            continue
        log.debug("plugin.loaded name=%s value=%s", entry_point.name, entry_point.value)
    _load_extra_plugins(pm, strict=strict, failures=failures)
    return pm


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
            register_plugin(pm, plugin, spec)
        except Exception as exc:
            if strict:
                raise
            failure = _failure(spec, f"${EXTRA_PLUGINS_ENV}", exc)
            log.error("plugin.load_failed name=%s value=%s reason=%s", failure.name, failure.value, failure.reason)
            if failures is not None:
                failures.append(failure)
