"""The pluggy entry point of the bgp announcer (`metalloid.announcers` group: `bgp`).

Registers a factory, not the class (as the layer 2 plugin does): the
processes that load every plugin only for its config validators (the
watchers, `metalloid check`) and the announcer processes of other protocols
never import the announcer, FRR's shell and its configuration renderer.
"""

from __future__ import annotations

from typing import ClassVar

from plugins.bgp import validation
from supervisor.api import Announcer, AnnouncerHost, AnnouncerRegistry, Config, Diagnostic, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 2)


class BGPFactory:
    """Builds the `BGPAnnouncer` for the announcer process (an `AnnouncerFactory`)."""

    protocol: ClassVar[str] = "bgp"

    def __call__(self, host: AnnouncerHost) -> Announcer:
        # deferred: +1.4 MiB PSS in each watcher and in the layer 2 announcer, which load this plugin too
        # (python -X importtime + /proc PSS, 2026-12-07).
        from plugins.bgp.announcer import BGPAnnouncer

        return BGPAnnouncer(host)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(BGPFactory())


@hookimpl
def metalloid_validate_config(config: Config) -> list[Diagnostic]:
    return validation.validate(config)
