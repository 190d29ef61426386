"""ServiceL2Status: one object per Service this speaker announces in layer 2 mode, as MetalLB writes it.

What goes in comes from the layer 2 announcer's real state (`AnnouncerState`,
passed on by the announcer host), never from an election of our own: the node
that answers ARP/NDP and the interfaces it answers on
(`status.interfaces[].name`). The object's shape, the writes on change only
and the clean-up are `servicestatus`'s; layer 2 is exclusive (one node
announces a Service), so the announcing node also deletes another node's
status for the same Service, like MetalLB's reconciler.

One difference, on purpose: MetalLB leaves `interfaces` empty when the
L2Advertisement names none ("all of them"); metalloid lists the interfaces it
really answers on, which is what an operator reading it wants to know.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.announcing.api import AnnouncerState
from supervisor.config.model import ServiceKey
from supervisor.kubernetes import kinds
from supervisor.kubernetes.servicestatus import Flavor, ServiceStatusWriter

PROTOCOL = "layer2"

LAYER2 = Flavor(
    kind=kinds.SERVICE_L2_STATUS, generate_name="l2-", exclusive=True, log_name="l2status",
    details=lambda interfaces: {"interfaces": [{"name": n} for n in interfaces] if interfaces else None},
)  # fmt: skip


def wanted_statuses(states: Iterable[AnnouncerState]) -> dict[ServiceKey, tuple[str, ...]]:
    """Service → the sorted interfaces this node answers on for it, from the layer 2 announcer's state."""
    found: dict[ServiceKey, set[str]] = {}
    for state in states:
        for announcement in state.announcements:
            if announcement.protocol == PROTOCOL:
                found.setdefault(announcement.service, set()).update(announcement.interfaces)
    return {key: tuple(sorted(names)) for key, names in found.items()}


class L2StatusWriter(ServiceStatusWriter):
    """ServiceL2Status of the Services this node announces in layer 2 mode."""

    flavor = LAYER2
