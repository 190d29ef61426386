"""The installed plugins' checks of a config, as `check`, `plan` and the running watchers apply them.

`plugin_validators` calls every plugin's `metalloid_validate_config` hook and
names an AnnouncerConfig no loaded plugin registers; `load_failure_diagnostics`
turns a plugin that failed to load into a diagnostic. The commands (errors) and
the watchers (`running_validators`: warnings) share them from here, below both.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from supervisor.announcing.api import AnnouncerRegistry
from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.model import API_SOURCE, Config, Source
from supervisor.plugins_loader import PluginLoadFailure, build_plugin_manager


def plugin_validators(failures: list[PluginLoadFailure] | None = None) -> list[Callable[[Config], list[Diagnostic]]]:
    """One validator calling every installed plugin's `metalloid_validate_config` hook."""
    pm = build_plugin_manager(failures=failures)
    registry = AnnouncerRegistry()
    try:
        pm.hook.metalloid_register_announcers(registry=registry)
        registry_error = None
    except Exception as exc:  # two plugins claiming one protocol, a bug in a registration hook
        registry_error = f"{type(exc).__name__}: {exc}"
    broken = {f.name: f for f in failures or []}

    def run_hooks(config: Config) -> list[Diagnostic]:
        found = [*_unregistered(config, registry, broken)] if registry_error is None else [
            error(API_SOURCE, "Plugin", "register", f"metalloid_register_announcers failed: {registry_error}")]
        if not pm.get_plugins():
            return found
        try:
            results: list[list[Diagnostic]] = pm.hook.metalloid_validate_config(config=config)
        except Exception as exc:  # a plugin's bug must not hide the rest of the report
            return [*found, error(API_SOURCE, "Plugin", "validate",
                                  f"a plugin's metalloid_validate_config raised {type(exc).__name__}: {exc}; "
                                  "report it to the plugin's authors, or run with --no-plugins")]
        return [*found, *(d for result in results for d in (result or []))]

    return [run_hooks]


def _unregistered(config: Config, registry: AnnouncerRegistry,
                  broken: dict[str, PluginLoadFailure]) -> list[Diagnostic]:
    """An AnnouncerConfig for a protocol no loaded plugin registers: a typo, or a plugin not installed."""
    found = []
    for announcer in config.announcers:
        if registry.get(announcer.name) is not None:
            continue
        if announcer.name in broken:
            why = f"its plugin failed to load: {broken[announcer.name].reason}"
        else:
            close = difflib.get_close_matches(announcer.name, registry.names(), n=1)
            why = (f"did you mean {close[0]}?" if close else
                   f"registered: {', '.join(registry.names()) or 'none'}; install its plugin")
        found.append(error(announcer.source, "AnnouncerConfig", announcer.name,
                           f"no installed plugin registers announcer protocol {announcer.name!r}; {why}"))
    return found


def load_failure_diagnostics(failures: list[PluginLoadFailure], *, as_errors: bool) -> list[Diagnostic]:
    """A plugin that failed to load, as a diagnostic naming the plugin and the hook at fault."""
    make = error if as_errors else warning
    return [make(Source(file="<plugins>", line=0), "Plugin", f.name,
                 f"{f}" + (f" (hook {f.hook})" if f.hook else "") + "; fix or uninstall the plugin")
            for f in failures]


def running_validators() -> list[Callable[[Config], list[Diagnostic]]]:
    """The validators a running watcher (file or Kubernetes) applies to every load.

    The same plugin checks `metalloid check` runs, so a rejection reads the
    same; a plugin that failed to load is a warning on every load instead of an
    error (/status shows it).
    """
    failures: list[PluginLoadFailure] = []
    validators = plugin_validators(failures)
    # Not the config's fault, so not a rejection; an announcer of that plugin fails to start and says why.
    noted = load_failure_diagnostics(failures, as_errors=False)
    return [*validators, lambda config: list(noted)] if noted else validators
