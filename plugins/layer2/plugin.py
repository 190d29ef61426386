"""The pluggy entry point of the layer 2 announcer (`metalloid.announcers` group: `layer2`).

Only registers a factory; everything else happens inside the announcer
process the host runs it in. The factory, not the class, is registered so
that the processes that load every plugin only to validate configs (the
watchers, `metalloid check`) never import the announcer and its sockets.
"""

from __future__ import annotations

from typing import ClassVar

from supervisor.api import Announcer, AnnouncerHost, AnnouncerRegistry, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 4)


class Layer2Factory:
    """Builds the `Layer2Announcer` for the announcer process (an `AnnouncerFactory`)."""

    protocol: ClassVar[str] = "layer2"

    def __call__(self, host: AnnouncerHost) -> Announcer:
        # deferred: +1.3 MiB PSS in each watcher, which loads this plugin for validation only (2026-12-06).
        from plugins.layer2.announcer import Layer2Announcer

        return Layer2Announcer(host)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(Layer2Factory())
