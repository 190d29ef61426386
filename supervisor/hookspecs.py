"""The plugin contract: every hook metalloid calls, documented for plugin authors.

A plugin is a module (or object) with functions decorated by `hookimpl`,
published through the `metalloid.announcers` entry-point group in its
pyproject.toml:

    [project.entry-points."metalloid.announcers"]
    myproto = "my_package.plugin"

metalloid loads every module of that group into a pluggy PluginManager inside
each announcer process and each process that validates configs (a
PluginManager does not pickle, so it is never built in the supervisor and sent
over). A misspelled hook (`check_pending()`), a `metalloid_*` function without
`@hookimpl`, or a plugin API version this metalloid does not provide
(`METALLOID_PLUGIN_API_REQUIRED`) fails the load loudly, naming the plugin and
the hook, instead of being silently ignored. docs/plugins.md is the reference;
a test checks its hook table against this module.

Behaviour is not hooks: the registration hook hands over an announcer *class*
implementing `supervisor.announcing.api.Announcer`, keyed by its `protocol`
name. See docs/plugins.md for a complete, tested example.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

# Defined with no import, for the start-up check; re-exported here for plugin authors and the loader.
from supervisor.plugin_names import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from supervisor.announcing.api import AnnouncerRegistry
    from supervisor.config.diagnostics import Diagnostic
    from supervisor.config.model import Config

PROJECT = "metalloid"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    """Register this plugin's announcer classes.

    Fires once per announcer process, right after the plugins are loaded and
    before any announcer is built; also where configs are validated, to know
    which protocols an AnnouncerConfig may name.

    :param registry: call ``registry.add(MyAnnouncer)`` for each class; the
        class's ``protocol`` attribute (e.g. ``"layer2"``, ``"bgp"``) is the
        name operators enable and the ``protocol`` label in metrics. Two
        plugins claiming the same protocol is an error at load time.
    :return: nothing; registration is by side effect on ``registry``.
    """


@hookspec
def metalloid_validate_config(config: Config) -> list[Diagnostic]:
    """Contribute validation for the parts of the config this plugin consumes.

    Fires on ``metalloid check``, ``metalloid plan``, before every reload of
    ``metalloid run`` is accepted, and on every config change the Kubernetes
    controller and speakers see; after metalloid's own validation passed.
    Pure: no I/O.

    :param config: the parsed config (``supervisor.config.model.Config``);
        this plugin's settings are ``config.announcer(protocol).settings``.
    :return: a list of ``Diagnostic`` (``supervisor.api.setting_error`` for a
        setting, ``error`` or ``warning``); an error rejects the config exactly
        like one of metalloid's own, so a reload keeps the last good config.
        All plugins' lists are concatenated (not ``firstresult``).
    """
    raise NotImplementedError
