"""The pluggy entry point of the bgp announcer (`metalloid.announcers` group: `bgp`)."""

from __future__ import annotations

from plugins.bgp import validation
from plugins.bgp.announcer import BGPAnnouncer
from supervisor.api import AnnouncerRegistry, Config, Diagnostic, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 2)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(BGPAnnouncer)


@hookimpl
def metalloid_validate_config(config: Config) -> list[Diagnostic]:
    return validation.validate(config)
