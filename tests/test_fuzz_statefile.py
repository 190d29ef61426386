"""Fuzzing the state file: any bytes → refused with StateFileError, or exactly what the file literally says.

"Never reinterpreted" as a property: when `decode` accepts bytes, the JSON
they hold, read the plain way, maps every key to exactly the IP strings
returned. Inputs: random bytes, random JSON values, and mutations of files
`encode` wrote.
"""

from __future__ import annotations

import ipaddress
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.allocating import statefile
from supervisor.allocating.statefile import StateFileError
from supervisor.config.model import ServiceKey

SETTINGS = settings(
    max_examples=int(os.environ.get("METALLOID_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
GOOD = statefile.encode({
    ServiceKey(namespace="default", name="web"): (ipaddress.ip_address("10.0.0.1"),),
    ServiceKey(namespace="ns", name="dual"): (ipaddress.ip_address("10.0.0.2"), ipaddress.ip_address("fd00::2")),
}, {ServiceKey(namespace="default", name="web"): "first-pool"})

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
ENTRY = st.fixed_dictionaries({"ips": st.one_of(JSON, st.lists(st.sampled_from(
    ["10.0.0.1", "10.0.0.1 ", "010.0.0.1", "fd00::1", "FD00::1", "10.0.0.0/24", "", "::ffff:10.0.0.1"]),
    max_size=3))}, optional={"pool": JSON, "extra": JSON})
STRUCTURED = st.builds(
    lambda version, assignments: json.dumps({"format": statefile.FORMAT, "version": version,
                                             "assignments": assignments}).encode(),
    st.one_of(st.just(1), JSON),
    st.one_of(JSON, st.dictionaries(st.sampled_from(["a/b", "b", "a/", "/b", "a/b/c", "a b/c", "ns/x\t"]), ENTRY,
                                    max_size=3)),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(GOOD)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        action = draw(st.sampled_from(["set", "delete", "insert"]))
        if action == "set":
            data[at] = draw(st.sampled_from(b'{}[]",:0123456789.-eE ntfaluris/\\\x00'))
        elif action == "delete":
            del data[at]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


def literal(data: bytes) -> dict[str, list[str]]:
    return {key: entry["ips"] for key, entry in json.loads(data)["assignments"].items()}


@SETTINGS
@given(data=st.one_of(st.binary(max_size=200), STRUCTURED, mutated()))
def test_any_bytes_are_refused_or_read_literally(data: bytes) -> None:
    try:
        result = statefile.decode(data, path="state.json")
    except StateFileError as exc:
        assert "state file state.json" in str(exc)
        return
    assert {str(key): [str(ip) for ip in ips] for key, ips in result.items()} == literal(data)


def test_the_property_sees_accepted_files() -> None:
    """Not vacuous: an encoded file is accepted and read literally."""
    assert {str(k): [str(ip) for ip in v] for k, v in statefile.decode(GOOD).items()} == literal(GOOD)
