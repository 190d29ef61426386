"""pluggy registration of the BGP stub (entry point `bgp-stub` in pyproject.toml).

The BGP checks (`plugins.bgp.validation`) are contributed by the `bgp` plugin
only, so that they are not reported twice. A factory is registered, not the
class: its announcer imports the bgp plugin's planning and metrics modules,
which no other process needs (see `plugins.bgp.plugin`).
"""

from __future__ import annotations

from typing import ClassVar

from supervisor.api import Announcer, AnnouncerHost, AnnouncerRegistry, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 2)


class BGPStubFactory:
    """Builds the `BGPStubAnnouncer` for the announcer process (an `AnnouncerFactory`)."""

    protocol: ClassVar[str] = "bgp-stub"

    def __call__(self, host: AnnouncerHost) -> Announcer:
        # deferred: the bgp plugin's planning and metrics modules, kept out of every other process (2026-12-07).
        from plugins.bgp_stub.announcer import BGPStubAnnouncer

        return BGPStubAnnouncer(host)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(BGPStubFactory())
