"""pluggy registration of the BGP stub (entry point `bgp-stub` in pyproject.toml).

The BGP checks (`plugins.bgp.validation`) are contributed by the `bgp` plugin
only, so that they are not reported twice.
"""

from __future__ import annotations

from plugins.bgp_stub.announcer import BGPStubAnnouncer
from supervisor.api import AnnouncerRegistry, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 2)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(BGPStubAnnouncer)
