"""Parse MetalLB's BGP side kinds (BFDProfile, Community) and the pieces the
BGP and layer 2 kinds share with them: community values, kept-but-unused
fields.

The bgp plugin acts on these objects through FRR; `metalloid check` must say
the same things about them as MetalLB's webhook: bounds of a BFD profile, the format of a community,
duplicate aliases. Kept-but-unused fields are recorded as `InertField`s (see
`kept_fields`) and warned about. `parsing` dispatches here.
"""

from __future__ import annotations

import re

from supervisor.config.fields import Fields, describe
from supervisor.config.kept_fields import WHOLE_OBJECT, inert_field, kept_keys
from supervisor.config.model import BFDProfile, Community, CommunityAlias, InertField

_STANDARD = re.compile(r"^([0-9]+):([0-9]+)$")
_LARGE = re.compile(r"^large:([0-9]+):([0-9]+):([0-9]+)$")
_U16, _U32 = 0xFFFF, 0xFFFFFFFF
COMMUNITY_FORMAT = "two 16-bit numbers (65535:65282) or large: and three 32-bit numbers (large:64512:1:2)"


def community_problem(text: str) -> str | None:
    """Why `text` is not a BGP community value (MetalLB's `community.New`), or None."""
    standard = _STANDARD.match(text)
    if standard:
        return None if all(int(part) <= _U16 for part in standard.groups()) else "a part is above 65535"
    large = _LARGE.match(text)
    if large:
        return None if all(int(part) <= _U32 for part in large.groups()) else "a part is above 4294967295"
    return "it is not " + COMMUNITY_FORMAT


def is_community_literal(text: str) -> bool:
    """MetalLB's split: a value with one or three colons is a community, anything else an alias name."""
    return text.count(":") in (1, 3)


def advertisement_communities(spec: Fields) -> tuple[str, ...]:
    """spec.communities of a BGPAdvertisement: literals checked here, aliases by validation."""
    found: list[str] = []
    for text, path, line in spec.get_strs("communities"):
        problem = community_problem(text) if is_community_literal(text) else None
        if problem is not None:
            spec.ctx.error(line, f"{path}: {describe(text)} is not a BGP community ({problem}); write "
                                 f"{COMMUNITY_FORMAT}, or the name of a Community alias")
        elif text in found:
            # MetalLB refuses the configuration ("duplicate definition of community"); it changes nothing here.
            spec.ctx.warning(line, f"{path}: {text!r} is listed twice; metalloid ignores the repetition, but MetalLB "
                                   "refuses the whole configuration over it (duplicate definition of community); "
                                   "remove it")
        else:
            found.append(text)
    return tuple(found)


def report_kept(spec: Fields, kind: str, namespace: str, name: str) -> tuple[InertField, ...]:
    """Warn about each kept-but-unused field `spec` sets and return their records."""
    found: list[InertField] = []
    for key in sorted(kept_keys(kind)):
        if not spec.has(key):
            continue
        line = spec.line_of(key)
        record = inert_field(kind, namespace, name, spec.path_of(key), spec.ctx.source(line))
        if record is not None:
            spec.ctx.warning(line, record.message)
            found.append(record)
    return tuple(found)


def report_kept_kind(top: Fields, kind: str, namespace: str, name: str) -> tuple[InertField, ...]:
    """Warn that a whole kind is kept but not acted on, and return its record."""
    record = inert_field(kind, namespace, name, WHOLE_OBJECT, top.ctx.source())
    if record is None:
        return ()
    top.ctx.warning(top.line, record.message)
    return (record,)


_BFD_BOUNDS = {
    "receiveInterval": (10, 60000),
    "transmitInterval": (10, 60000),
    "detectMultiplier": (2, 255),
    "echoInterval": (10, 60000),
    "minimumTtl": (1, 254),
}


def parse_bfd_profile(spec: Fields, name: str, namespace: str) -> BFDProfile:
    spec.warn_unknown(frozenset({*_BFD_BOUNDS, "echoMode", "passiveMode"}))
    values = {key: spec.get_int(key, None, low=low, high=high) for key, (low, high) in _BFD_BOUNDS.items()}
    return BFDProfile(
        name=name,
        namespace=namespace,
        receive_interval=values["receiveInterval"],
        transmit_interval=values["transmitInterval"],
        detect_multiplier=values["detectMultiplier"],
        echo_interval=values["echoInterval"],
        echo_mode=spec.get_bool("echoMode", False),
        passive_mode=spec.get_bool("passiveMode", False),
        minimum_ttl=values["minimumTtl"],
        source=spec.ctx.source(),
    )


def parse_community(spec: Fields, name: str, namespace: str) -> Community:
    spec.warn_unknown(frozenset({"communities"}))
    aliases: list[CommunityAlias] = []
    for entry in spec.get_maps("communities"):
        entry.warn_unknown(frozenset({"name", "value"}))
        alias, value = entry.get_str("name", "") or "", entry.get_str("value", "") or ""
        problem = community_problem(value)
        if problem is not None:
            entry.ctx.error(entry.line_of("value"), f"{entry.path_of('value')}: {describe(value)} is not a BGP "
                                                    f"community ({problem}); write {COMMUNITY_FORMAT}")
        elif not alias:
            # MetalLB accepts it (an alias named ""), but nothing can use it.
            entry.ctx.warning(entry.line, f"{entry.path}: name is missing, so no BGPAdvertisement can use this "
                                          "value; name the alias")
        else:
            aliases.append(CommunityAlias(name=alias, value=value))
    return Community(name=name, namespace=namespace, aliases=tuple(aliases), source=spec.ctx.source())
