"""Which announcers run on this node, and why. Pure.

Installing a plugin package never starts it: an announcer runs when

1. `--announcers LIST` (or $METALLOID_ANNOUNCERS) names it. The list is then
   the whole set: nothing else runs ("enabled by --announcers");
2. otherwise, an `AnnouncerConfig` named after it has `spec.enabled: true`
   (the default) ("enabled by AnnouncerConfig/NAME at FILE:LINE");
3. otherwise, by default, for MetalLB's own resources, so a MetalLB config
   needs nothing more: `layer2` when the config has an L2Advertisement, `bgp`
   when it has a BGPPeer ("default: the config has L2Advertisements"). An
   `AnnouncerConfig` with `enabled: false` turns a default off.

`decide` is re-run on every accepted config: a reload can start or stop an
announcer (see `supervisor.supervising.reloading`).
"""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.config.model import Config

FLAG = "--announcers"
LAYER2 = "layer2"
BGP = "bgp"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One announcer protocol: whether it runs on this node and the reason, for `metalloid status`."""

    protocol: str
    enabled: bool
    reason: str


def decide(config: Config | None, requested: tuple[str, ...] | None) -> tuple[Decision, ...]:
    """Every protocol the flag or the config mentions, enabled or not, sorted by name."""
    decisions: dict[str, Decision] = {}
    if requested:
        for protocol in requested:
            decisions[protocol] = Decision(protocol=protocol, enabled=True, reason=f"enabled by {FLAG}")
        if config is not None:
            for announcer in config.announcers:
                decisions.setdefault(announcer.name, Decision(
                    protocol=announcer.name, enabled=False,
                    reason=f"not in {FLAG} (which overrides AnnouncerConfig/{announcer.name})"))
        return tuple(decisions[p] for p in sorted(decisions))
    if config is None:
        return ()
    for announcer in config.announcers:
        where = f"AnnouncerConfig/{announcer.name} at {announcer.source}"
        decisions[announcer.name] = Decision(
            protocol=announcer.name, enabled=announcer.enabled,
            reason=f"enabled by {where}" if announcer.enabled else f"disabled by {where} (spec.enabled: false)")
    for protocol, present, what in ((LAYER2, bool(config.l2_advertisements), "L2Advertisements"),
                                    (BGP, bool(config.bgp_peers), "BGPPeers")):
        if present and protocol not in decisions:
            decisions[protocol] = Decision(protocol=protocol, enabled=True, reason=f"default: the config has {what}")
    return tuple(decisions[p] for p in sorted(decisions))


def enabled(decisions: tuple[Decision, ...]) -> list[str]:
    return [d.protocol for d in decisions if d.enabled]


def parse_list(text: str | None) -> tuple[str, ...] | None:
    """The --announcers value as protocols (None when unset or empty)."""
    names = tuple(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))
    return names or None
