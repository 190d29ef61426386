"""The supervisor's routing as a pure function: (state, message) → (new state, messages by role)."""

from __future__ import annotations

import ipaddress

from supervisor.allocating.results import AllocationResult, Assignment
from supervisor.announcing.api import AnnouncerState
from supervisor.config.diagnostics import Diagnostic, Severity
from supervisor.config.model import API_SOURCE, Config, Node, Service, ServiceKey
from supervisor.messages import (
    AllocationDone,
    AnnouncementsChanged,
    ConfigLoaded,
    ConfigRejected,
    MemberInfo,
    MembersChanged,
    ViewChanged,
)
from supervisor.roles import Mode, Role
from supervisor.supervising.routing import route
from supervisor.supervising.state import RoutedState, for_allocator, for_membership

WEB = ServiceKey(namespace="default", name="web")
CONFIG = Config(services=(Service(namespace="default", name="web"),), nodes=(Node(name="n1"), Node(name="n2")))


def loaded(generation: int = 1, config: Config = CONFIG) -> ConfigLoaded:
    return ConfigLoaded(generation=generation, config=config, origin="test")


def done(generation: int) -> AllocationDone:
    ip = ipaddress.ip_address("10.0.0.1")
    return AllocationDone(generation=generation, result=AllocationResult(
        assignments={WEB: Assignment(service=WEB, ips=(ip,), pool="p")}, pending={}, pools=()))


def test_a_new_config_goes_to_the_allocator_and_membership_renumbered() -> None:
    state = RoutedState(node_name="n1")
    routed = route(state, loaded(generation=41))
    assert routed.config is not None and routed.config.generation == 1  # the supervisor's own numbering
    # Each role gets its part (config.parts): the allocator the pools, Services and Namespaces,
    # membership the Nodes and Settings.
    assert routed.outgoing == ((Role.ALLOCATOR, for_allocator(routed.config)),
                               (Role.MEMBERSHIP, for_membership(routed.config)))
    allocator = for_allocator(routed.config)
    assert allocator.config.services == CONFIG.services and allocator.config.nodes == ()
    assert for_membership(routed.config).config == Config(nodes=CONFIG.nodes)
    assert routed.state.loaded == routed.config
    # The same config again (a restarted watcher re-reading it) routes nothing.
    again = route(routed.state, loaded(generation=1))
    assert again.outgoing == () and again.config is None and again.state.generation == 1


def test_the_given_state_is_never_changed() -> None:
    state = RoutedState(node_name="n1")
    route(state, loaded())
    assert state.loaded is None and state.generation == 0 and state.in_flight == {}
    first = route(state, loaded()).state
    route(first, done(1))
    route(first, AnnouncementsChanged(worker="announcer-layer2", state=AnnouncerState(protocol="layer2")))
    assert first.allocation is None and first.in_flight == {1: CONFIG} and first.announced == {}


def test_an_allocation_goes_to_membership_then_the_announcers_see_the_view() -> None:
    state = route(RoutedState(node_name="n1"), loaded()).state
    routed = route(state, done(1))
    assert routed.allocation == done(1)
    (role1, first), (role2, second) = routed.outgoing
    assert (role1, first) == (Role.MEMBERSHIP, done(1))
    assert role2 is Role.ANNOUNCER and isinstance(second, ViewChanged)
    assert second.view.assignments == (done(1).result.assignments[WEB],)
    assert second.view.members == frozenset({"n1", "n2"})  # configured peers presumed alive until membership speaks


def test_an_allocation_older_than_the_one_in_force_is_dropped() -> None:
    state = route(RoutedState(node_name="n1"), loaded()).state
    state = route(state, loaded(config=Config())).state
    state = route(state, done(2)).state
    late = route(state, done(1))
    assert late.outgoing == () and late.allocation is None and late.state.allocation == done(2)


def test_membership_changes_reach_the_announcers_once_there_is_an_allocation() -> None:
    members = MembersChanged(alive=frozenset({"n1"}))
    before = route(RoutedState(node_name="n1"), members)
    assert before.outgoing == () and before.state.members == members
    state = route(route(RoutedState(node_name="n1"), loaded()).state, done(1)).state
    (role, message), = route(state, members).outgoing
    assert role is Role.ANNOUNCER and isinstance(message, ViewChanged) and message.view.members == frozenset({"n1"})


def test_a_membership_report_that_changes_no_one_alive_sends_the_announcers_nothing() -> None:
    state = route(route(RoutedState(node_name="n1"), loaded()).state, done(1)).state
    first = MembersChanged(alive=frozenset({"n1"}), changed_at=5.0)
    state = route(state, first).state
    # The once-a-second report: new ages for /status, the same live set since the same moment.
    again = MembersChanged(alive=frozenset({"n1"}), changed_at=5.0,
                           members=(MemberInfo(name="n1", alive=True, last_heard_seconds=0.0, digest=""),))
    routed = route(state, again)
    assert routed.outgoing == () and routed.state.members == again
    (role, message), = route(routed.state, MembersChanged(alive=frozenset({"n1", "n2"}), changed_at=6.0)).outgoing
    assert role is Role.ANNOUNCER and isinstance(message, ViewChanged)
    assert (message.view.members, message.view.members_changed_at) == (frozenset({"n1", "n2"}), 6.0)


def test_a_rejected_config_marks_stale_and_routes_nothing() -> None:
    state = route(RoutedState(node_name="n1"), loaded()).state
    bad = ConfigRejected(generation=2, origin="test", diagnostics=(
        Diagnostic(severity=Severity.ERROR, source=API_SOURCE, kind="IPAddressPool", name="p", message="bad"),))
    routed = route(state, bad)
    assert routed.outgoing == () and routed.state.stale and routed.state.loaded == state.loaded


def test_announcements_go_to_the_watcher_in_kubernetes_mode_only() -> None:
    message = AnnouncementsChanged(worker="announcer-layer2", state=AnnouncerState(protocol="layer2"))
    kubernetes = route(RoutedState(node_name="n1", mode=Mode.KUBERNETES), message)
    assert kubernetes.outgoing == ((Role.WATCHER, message),)
    standalone = route(RoutedState(node_name="n1"), message)
    assert standalone.outgoing == () and standalone.state.announced == {"announcer-layer2": message}


def test_a_speakers_passed_on_allocation_is_kept_once() -> None:
    # The speaker's allocator answers with the assignments the watcher attached
    # to the config; unpickled, that is a second equal copy, and only one is kept.
    attached = done(1).result
    state = route(RoutedState(node_name="n1", mode=Mode.KUBERNETES),
                  ConfigLoaded(generation=1, config=CONFIG, origin="test", allocation=attached)).state
    answer = done(1)  # equal, not the same object
    assert answer.result == attached and answer.result is not attached
    routed = route(state, answer)
    assert routed.state.allocation is not None and routed.state.allocation.result is attached
    assert routed.allocation == answer and routed.state.allocation == answer
    # A different answer (not the attached one) is kept as it came.
    other = AllocationDone(generation=2, result=AllocationResult(assignments={}, pending={}, pools=()))
    state2 = route(routed.state, ConfigLoaded(generation=2, config=Config(), origin="test", allocation=attached)).state
    assert route(state2, other).state.allocation == other
