"""The public API for announcer plugins: import from here and nowhere else.

The layer 2 and BGP plugins shipped with metalloid use only these names, so a
third-party plugin can do everything they do. A test enforces it. (Tests of a
plugin may also import `supervisor.plugin_testing`, the public testing kit.)

`METALLOID_PLUGIN_API` is the version of this contract (the hooks, the
Announcer Protocol, the host, the status shape, these names). A plugin declares
the version it needs as `METALLOID_PLUGIN_API_REQUIRED = (major, minor)` in
its plugin module; docs/plugins.md ("Compatibility") says what changes bump
which number.
"""

from supervisor import batchio, bpf, ebpf
from supervisor.allocating.results import Assignment
from supervisor.announcing.api import (
    AnnounceFailure,
    AnnounceFailureStatus,
    Announcement,
    AnnouncementStatus,
    Announcer,
    AnnouncerHost,
    AnnouncerRegistry,
    AnnouncerStatus,
    AnnouncerView,
    Previous,
    Recoverable,
    SecretUnavailable,
)
from supervisor.config.announcer_config import setting_error, setting_source, setting_warning
from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.model import (
    AnnouncerConfig,
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
    NO_BGP_SERVICE_MATCH,
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

# The plugin contract's version: (major, minor). See the module docstring.
METALLOID_PLUGIN_API: tuple[int, int] = (1, 4)

__all__ = [
    "METALLOID_PLUGIN_API",
    "NO_BGP_SERVICE_MATCH",
    "NO_SERVICE_MATCH",
    "SHARED_WITH_SELECTOR",
    "AnnounceFailure",
    "AnnounceFailureStatus",
    "Announcement",
    "AnnouncementStatus",
    "Announcer",
    "AnnouncerConfig",
    "AnnouncerHost",
    "AnnouncerRegistry",
    "AnnouncerStatus",
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
    "Previous",
    "Recoverable",
    "SecretUnavailable",
    "Service",
    "ServiceKey",
    "Source",
    "batchio",
    "bpf",
    "ebpf",
    "elect_layer2",
    "eligibility",
    "error",
    "hookimpl",
    "preferred_scores",
    "rank",
    "setting_error",
    "setting_source",
    "setting_warning",
    "warning",
]
