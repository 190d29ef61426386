"""The pluggy entry point of the layer 2 announcer (`metalloid.announcers` group: `layer2`).

Only registers the class; everything else happens inside the announcer
process the host runs it in.
"""

from __future__ import annotations

from plugins.layer2.announcer import Layer2Announcer
from supervisor.api import AnnouncerRegistry, hookimpl

# The plugin API this plugin is written against (docs/plugins.md, "Compatibility").
METALLOID_PLUGIN_API_REQUIRED = (1, 1)


@hookimpl
def metalloid_register_announcers(registry: AnnouncerRegistry) -> None:
    registry.add(Layer2Announcer)
