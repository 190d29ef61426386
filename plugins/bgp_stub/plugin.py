"""pluggy registration of the BGP stub (entry point `bgp` in pyproject.toml)."""

from __future__ import annotations

from plugins.bgp_stub import validation
from plugins.bgp_stub.announcer import BGPStubAnnouncer
from supervisor.api import AnnouncerRegistry, Config, Diagnostic, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 0)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(BGPStubAnnouncer)


@hookimpl
def metalloid_validate_config(config: Config) -> list[Diagnostic]:
    return validation.validate(config)
