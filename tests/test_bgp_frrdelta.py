"""The incremental FRR apply's diff (plugins/bgp/frrdelta.py), pure.

Each pair of golden configurations (tests/fixtures/bgp/*.conf) is diffed
both ways; a small model of how FRR executes the script (a line adds an
entry in its context, `no LINE` removes it, `no HEADER` a whole block, `no
neighbor A remote-as N` the whole neighbor) must turn the old entries into
the new ones, and FRR's own parser must accept every script (`vtysh
--dryrun`). The lab test (tests/test_bgp_lab.py) checks the real FRR.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from plugins.bgp.frrdelta import Entry, compute, entries

GOLDEN = Path(__file__).parent / "fixtures" / "bgp"
CONFIGS = {p.stem: p.read_text() for p in sorted(GOLDEN.glob("*.conf"))}
PAIRS = [("basic", "two-peers-two-advertisements"), ("basic", "dual-stack-address-family"),
         ("basic", "interface-unnumbered"), ("basic", "local-asn"), ("ipv6-peer", "two-peers-one-per-family"),
         ("basic", "no-routes"), ("basic", "vrf"), ("basic", "timers"), ("basic", "ibgp"), ("basic", "bfd-profile"),
         ("bfd-profile", "basic"), ("communities", "local-pref"), ("password", "basic"), ("basic", "aggregation"),
         ("ipv6-peer", "basic"), ("graceful-restart", "basic"), ("dynamic-asn-internal", "basic")]
PAIRS += [(b, a) for a, b in PAIRS if (b, a) not in PAIRS]


def execute(state: list[Entry], script: str) -> set[Entry]:
    """What FRR would hold after `script`, modelled on the entries (see the module docstring)."""
    held = set(state)
    context: list[str] = []
    for entry_context, line in entries(script):
        context = list(entry_context)
        stripped = line.strip()
        indent = " " * (len(line) - len(line.lstrip()))
        if stripped.startswith("no ") and (tuple(context), indent + stripped[3:]) in held:
            target = indent + stripped[3:]
            words = stripped[3:].split()
            held.discard((tuple(context), target))
            block = (*context, target)
            held = {e for e in held if e[0][: len(block)] != block}
            if len(words) >= 3 and words[0] == "neighbor" and words[2] == "remote-as" and context:
                held = {e for e in held if not (e[0][:1] == (context[0],)
                                                and e[1].strip().startswith(f"neighbor {words[1]} "))}
        elif (tuple(context), f"{indent}no {stripped}") in held:
            held.discard((tuple(context), f"{indent}no {stripped}"))  # back to FRR's default
        else:
            if stripped.startswith("network "):  # replaces the same prefix's network line
                prefix = stripped.split()[1]
                held = {e for e in held if not (e[0] == tuple(context) and e[1].split()[:2] == ["network", prefix])}
            held.add((tuple(context), line))
    return held


def _without_headers(found: set[Entry]) -> set[Entry]:
    # An address-family header stays in FRR as long as its router does; compare the lines under it.
    return {e for e in found if not e[1].strip().startswith("address-family")}


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_the_script_turns_old_into_new(old: str, new: str) -> None:
    delta = compute(CONFIGS[old], CONFIGS[new])
    assert not delta.empty
    assert _without_headers(execute(entries(CONFIGS[old]), delta.script)) == _without_headers(
        set(entries(CONFIGS[new])))


def test_an_unchanged_configuration_has_an_empty_delta() -> None:
    for text in CONFIGS.values():
        delta = compute(text, text)
        assert delta.empty and delta.script == ""


def test_one_more_route_is_a_few_lines_in_their_contexts() -> None:
    old = CONFIGS["basic"]
    [line] = [x for x in old.splitlines() if x.startswith("  network 192.0.2.10/32")]
    added = line.replace("192.0.2.10", "192.0.2.11")
    delta = compute(old, old.replace(line, f"{line}\n{added}"))
    assert (delta.removed, delta.added) == (0, 1)
    assert delta.script == f"router bgp 64500\n address-family ipv4 unicast\n{added}\n exit-address-family\nexit\n"


def test_a_network_moving_to_another_tag_is_replaced_in_place() -> None:
    old = CONFIGS["basic"]
    [line] = [x for x in old.splitlines() if x.startswith("  network 192.0.2.10/32")]
    delta = compute(old, old.replace(line, "  network 192.0.2.10/32 route-map metalloid-tag-1"))
    assert "no network" not in delta.script and "  network 192.0.2.10/32 route-map metalloid-tag-1\n" in delta.script


def test_a_removed_neighbor_goes_whole_and_a_changed_remote_as_sends_the_neighbor_again() -> None:
    removed = compute(CONFIGS["two-peers-two-advertisements"], CONFIGS["basic"]).script
    assert " no neighbor 198.51.100.2 remote-as 64501" in removed
    assert "no neighbor 198.51.100.2 activate" not in removed  # FRR would refuse it after the neighbor went
    changed = compute(CONFIGS["basic"], CONFIGS["ibgp"]).script
    assert " no neighbor 198.51.100.1 remote-as 64501" in changed
    assert changed.index("no neighbor 198.51.100.1 remote-as") < changed.index(" neighbor 198.51.100.1 remote-as 64500")
    assert "  neighbor 198.51.100.1 activate" in changed  # unchanged, but gone with the old neighbor


def test_a_removed_route_map_entry_goes_with_one_command() -> None:
    script = compute(CONFIGS["basic"], CONFIGS["no-routes"]).script
    assert "no route-map metalloid-tor-out permit 10\n" in script
    assert "no match ip" not in script


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_frr_parses_the_script(old: str, new: str, tmp_path: Path) -> None:
    vtysh = shutil.which("vtysh")
    assert vtysh, "vtysh is missing: ./dev setup installs Debian's frr package"
    script = tmp_path / "delta.conf"
    script.write_text(compute(CONFIGS[old], CONFIGS[new]).script)
    done = subprocess.run([vtysh, "--dryrun", "-f", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
