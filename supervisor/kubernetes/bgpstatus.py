"""ServiceBGPStatus: one object per Service this speaker advertises over BGP, as MetalLB writes it.

MetalLB's speaker writes, per Service and node, `status.peers`: the names of
the BGPPeers the Service's prefixes are configured to be advertised to on a
session that exists (not whether that session is up: "the service being
actually advertised to a given peer depends on the session state and is not
indicated here"), and deletes the object when there is none. metalloid reads
the same from the bgp announcer's real state: each of its announcements
carries the peers whose FRR configuration holds the route (a peer whose
configuration was skipped, e.g. its passwordSecret unreadable, is not one).

Every eligible node advertises in BGP mode, so each node writes and deletes
only its own objects (`Flavor.exclusive` is False); the object's shape and
the writes on change only are `servicestatus`'s.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.announcing.api import AnnouncerState
from supervisor.config.model import ServiceKey
from supervisor.kubernetes import kinds
from supervisor.kubernetes.servicestatus import Flavor, ServiceStatusWriter

PROTOCOL = "bgp"

BGP = Flavor(
    kind=kinds.SERVICE_BGP_STATUS, generate_name="bgp-", exclusive=False, log_name="bgpstatus",
    details=lambda peers: {"peers": list(peers) if peers else None},
)  # fmt: skip


def wanted_bgp_statuses(states: Iterable[AnnouncerState]) -> dict[ServiceKey, tuple[str, ...]]:
    """Service → the sorted BGPPeers its routes are configured towards; Services with none are left out."""
    found: dict[ServiceKey, set[str]] = {}
    for state in states:
        for announcement in state.announcements:
            if announcement.protocol == PROTOCOL and announcement.peers:
                found.setdefault(announcement.service, set()).update(announcement.peers)
    return {key: tuple(sorted(peers)) for key, peers in found.items()}


class BGPStatusWriter(ServiceStatusWriter):
    """ServiceBGPStatus of the Services this node advertises over BGP."""

    flavor = BGP
