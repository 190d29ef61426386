"""The public API for announcer plugins: import from here and nowhere else.

The layer 2 and BGP plugins shipped with metalloid use only these names, so a
third-party plugin can do everything they do. A test enforces it.
"""

from supervisor.allocating.results import Assignment
from supervisor.announcing.api import (
    Announcement,
    Announcer,
    AnnouncerHost,
    AnnouncerRegistry,
    AnnouncerView,
)
from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.model import (
    BGPAdvertisement,
    BGPPeer,
    Config,
    IPAddress,
    IPAddressPool,
    L2Advertisement,
    LabelSelector,
    Service,
    ServiceKey,
    Source,
)
from supervisor.electing.election import (
    NO_SERVICE_MATCH,
    SHARED_WITH_SELECTOR,
    Election,
    Eligibility,
    elect_layer2,
    eligibility,
    preferred_scores,
    rank,
)
from supervisor.hookspecs import hookimpl

__all__ = [
    "NO_SERVICE_MATCH",
    "SHARED_WITH_SELECTOR",
    "Announcement",
    "Announcer",
    "AnnouncerHost",
    "AnnouncerRegistry",
    "AnnouncerView",
    "Assignment",
    "BGPAdvertisement",
    "BGPPeer",
    "Config",
    "Diagnostic",
    "Election",
    "Eligibility",
    "IPAddress",
    "IPAddressPool",
    "L2Advertisement",
    "LabelSelector",
    "Service",
    "ServiceKey",
    "Source",
    "elect_layer2",
    "eligibility",
    "error",
    "hookimpl",
    "preferred_scores",
    "rank",
    "warning",
]
