"""Each role's part of the config (`supervisor.config.parts`) gives the role the answer the whole config gives.

The supervisor sends the allocator, membership and the announcers only the
fields they read (issue 14; the bytes are bench/payloads.py's). These tests
run each role's own code on its part and on the whole config and compare,
so a role that starts reading a field its part drops fails here.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest

from plugins.bgp.planning import plan as bgp_plan
from plugins.layer2.planning import plan as layer2_plan
from supervisor.allocating.allocator import allocate
from supervisor.allocating.results import AllocationResult
from supervisor.allocating.worker import AllocatorCore
from supervisor.announcing.api import AnnouncerView
from supervisor.config import parts
from supervisor.config.loading import load_config_files
from supervisor.config.model import Config
from supervisor.membership.keys import key_problem
from supervisor.messages import AllocationDone, ConfigLoaded
from supervisor.roles import Mode, Role
from supervisor.supervising.routing import route
from supervisor.supervising.state import RoutedState
from supervisor.watching.file_watcher import FileWatcherCore
from supervisor.watching.loader import default_loader

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

BGP = """\
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r1, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: b, namespace: metallb-system}
spec: {communities: ["64500:1"], localPref: 100}
"""


def whole(path: Path, tmp_path: Path) -> Config:
    """The example as the loader returns it (line tracking included), with a BGP peer and advertisement."""
    extended = tmp_path / path.name
    extended.write_text(path.read_text().rstrip("\n") + "\n" + BGP)
    config, diagnostics = load_config_files([str(extended)])
    assert config is not None, [str(d) for d in diagnostics if d.is_error]
    return config


def view(config: Config, node: str, result: AllocationResult) -> AnnouncerView:
    return AnnouncerView(node_name=node, mode=Mode.STANDALONE, config=config,
                         assignments=tuple(result.assignments[k] for k in sorted(result.assignments)),
                         members=frozenset({"n1", "n2", *(n.name for n in config.nodes)}))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_role_answers_the_same_on_its_part(path: Path, tmp_path: Path) -> None:
    config = whole(path, tmp_path)
    assert any(s.field_lines for s in config.services), "the example tracks no lines: nothing is tested"
    # What a worker unpickles: the same config, without the line tracking.
    unlined = pickle.loads(pickle.dumps(config))
    assert unlined == config
    assert not any(item.field_lines for items in (unlined.pools, unlined.services, unlined.l2_advertisements,
                                                  unlined.bgp_peers, unlined.bgp_advertisements, unlined.announcers)
                   for item in items)
    # The allocator.
    assert allocate(parts.for_allocator(unlined)) == allocate(config)
    # The announcers, with the allocator's answer: layer 2's election and BGP's plan, on every node.
    result = allocate(config)
    assert result.assignments
    for node in ("n1", "n2"):
        part, all_of_it = view(parts.for_announcers(unlined), node, result), view(config, node, result)
        assert layer2_plan(part) == layer2_plan(all_of_it)
        assert bgp_plan(part) == bgp_plan(all_of_it)
    # Membership: its peers, addresses and key check.
    slim = parts.for_membership(unlined)
    assert (slim.nodes, slim.settings) == (config.nodes, config.settings)
    for insecure in (False, True):
        assert key_problem(slim, node_name="n1", key=None, insecure=insecure) == key_problem(
            config, node_name="n1", key=None, insecure=insecure)


def test_the_watchers_message_crosses_the_pipe_without_line_tracking(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text((ROOT / "examples" / "homelab.yaml").read_text())
    (loaded,) = FileWatcherCore([str(path)], load=default_loader("n1"), debounce_seconds=0.0).reload(reason="test")
    assert isinstance(loaded, ConfigLoaded) and any(s.field_lines for s in loaded.config.services)
    received = ForkingPickler.loads(ForkingPickler.dumps(loaded))
    assert received == loaded and not any(s.field_lines for s in received.config.services)
    # The watcher's diagnostics were made before: they still point at their lines.
    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("    - first-pool", "    - no-such-pool", 1))
    _, diagnostics = default_loader("n1")([str(broken)])
    assert any(d.source.line > 1 for d in diagnostics), [str(d) for d in diagnostics]


def test_each_role_is_routed_its_part(tmp_path: Path) -> None:
    config = whole(EXAMPLES[0], tmp_path)
    routed = route(RoutedState(node_name="n1"), ConfigLoaded(generation=1, config=config, origin="c.yaml"))
    sent = dict(routed.outgoing)
    assert routed.config is not None
    assert sent[Role.ALLOCATOR] == replace(routed.config, config=parts.for_allocator(config), warnings=())
    membership = sent[Role.MEMBERSHIP]
    assert isinstance(membership, ConfigLoaded) and membership.config == parts.for_membership(config)
    (done,) = AllocatorCore(state_dir=None, previous={}).handle(sent[Role.ALLOCATOR])
    assert isinstance(done, AllocationDone) and done.result == allocate(config)
    routed = route(routed.state, done)
    sent = dict(routed.outgoing)
    slim_done = sent[Role.MEMBERSHIP]
    assert isinstance(slim_done, AllocationDone)
    assert slim_done.result.assignments == done.result.assignments and slim_done.result.pending == {}
    # The supervisor itself keeps the whole allocation (for /status).
    assert routed.state.allocation == done


def test_a_kubernetes_allocator_gets_the_allocation_and_no_config(tmp_path: Path) -> None:
    config = whole(EXAMPLES[0], tmp_path)
    result = allocate(config)
    loaded = ConfigLoaded(generation=1, config=config, origin="kubernetes", allocation=result)
    routed = route(RoutedState(node_name="n1", mode=Mode.KUBERNETES), loaded)
    sent = dict(routed.outgoing)
    allocator = sent[Role.ALLOCATOR]
    assert isinstance(allocator, ConfigLoaded) and allocator.config == Config()
    (done,) = AllocatorCore(state_dir=None, previous={}).handle(allocator)
    assert isinstance(done, AllocationDone) and done.result == result
    membership = sent[Role.MEMBERSHIP]
    assert isinstance(membership, ConfigLoaded) and membership.allocation is None
