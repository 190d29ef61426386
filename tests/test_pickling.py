"""`quick_pickle`: the messages and the config pickle to what they were, faster (supervisor/pickling.py).

The speed is bench/status.py's and bench/runtime.py's to show; these tests
hold the behaviour: every message class crossing a pipe uses it, what
unpickles equals what was pickled (also when the stdlib's own state, a list,
comes in), a field marked `NOT_PICKLED` arrives as its default (but not
through `dumps_whole`, which keeps it), and a marked field without a default
is refused when the class is made.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import pickle
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from types import ModuleType

import pytest

from supervisor import messages
from supervisor.allocating import results
from supervisor.allocating.allocator import allocate
from supervisor.announcing import api
from supervisor.announcing.api import AnnouncerView
from supervisor.config import model
from supervisor.config.model import AddressRange, Config, IPAddressPool, Service, ServiceKey, ServicePort, Source
from supervisor.messages import AllocationDone, ConfigLoaded, MemberInfo, MembersChanged, ViewChanged
from supervisor.pickling import NOT_PICKLED, dumps_whole, quick_pickle
from supervisor.roles import Mode


def dataclasses_of(module: ModuleType) -> list[type]:
    return [c for c in vars(module).values()
            if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == module.__name__]


@pytest.mark.parametrize("module", [messages, model, results, api], ids=lambda m: m.__name__)
def test_every_dataclass_that_crosses_a_pipe_pickles_quickly(module: ModuleType) -> None:
    classes = dataclasses_of(module)
    assert classes
    slow = [c.__name__ for c in classes if c.__getstate__.__module__ != "supervisor.pickling"]  # type: ignore[attr-defined]
    assert slow == [], f"decorate with @quick_pickle (above @dataclass): {slow}"


def config(services: int = 3) -> Config:
    source = Source(file="/etc/metalloid/config.yaml", line=7)
    return Config(
        pools=(IPAddressPool(name="p", addresses=(AddressRange(first=ipaddress.ip_address("10.0.0.1"),
                                                                last=ipaddress.ip_address("10.0.0.6"),
                                                                text="10.0.0.1-10.0.0.6"),),
                             source=source, field_lines=(("spec.addresses[0]", 9),)),),
        services=tuple(
            Service(name=f"s{i}", namespace="default", ports=(ServicePort(port=80 + i, protocol="TCP"),),
                    requested_ips=(ipaddress.ip_address(f"10.0.0.{i + 1}"),), source=source,
                    field_lines=(("metadata.name", 10 + i),))
            for i in range(services)),
    )


def round_trip(value: object) -> object:
    return ForkingPickler.loads(ForkingPickler.dumps(value))


def test_messages_round_trip_equal_and_lose_only_the_line_tracking() -> None:
    whole = config()
    result = allocate(whole)
    for message in (
        ConfigLoaded(generation=3, config=whole, origin="file", allocation=result),
        AllocationDone(generation=3, result=result),
        MembersChanged(alive=frozenset({"n1"}), members=(MemberInfo(name="n1", alive=True, last_heard_seconds=0.5),),
                       digest_mismatch=(("n2", (ServiceKey(namespace="default", name="s0"),)),), changed_at=2.0),
        ViewChanged(view=AnnouncerView(node_name="n1", mode=Mode.STANDALONE, config=whole,
                                       assignments=tuple(result.assignments.values()), members=frozenset({"n1"}))),
    ):
        received = round_trip(message)
        assert received == message
        assert type(received) is type(message)
    received_config = round_trip(whole)
    assert isinstance(received_config, Config)
    assert [s.field_lines for s in whole.services] == [(("metadata.name", 10 + i),) for i in range(3)]
    assert [s.field_lines for s in received_config.services] == [(), (), ()]
    assert received_config.pools[0].field_lines == ()
    # Everything else arrived: the fields compared by equality, one by one.
    assert [dataclasses.astuple(s) for s in received_config.services] == [
        dataclasses.astuple(dataclasses.replace(s, field_lines=())) for s in whole.services]


def test_the_standard_librarys_state_is_read_too() -> None:
    # The state `dataclasses` itself makes for a slotted class: a list of the field values in order.
    service = config(1).services[0]
    state = [getattr(service, f.name) for f in dataclasses.fields(service)]
    made = object.__new__(Service)
    made.__setstate__(state)  # type: ignore[attr-defined]
    assert made == service and made.field_lines == service.field_lines


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class One:
    value: int


@quick_pickle
@dataclass(frozen=True, slots=True)
class Nothing:
    pass


@quick_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class Marked:
    kept: str
    dropped: tuple[int, ...] = field(default=(), metadata=NOT_PICKLED)
    after: int = 0


@pytest.mark.parametrize("value", [One(value=5), Nothing(), Marked(kept="k", dropped=(1, 2), after=3)],
                         ids=lambda v: type(v).__name__)
def test_small_classes(value: object) -> None:
    received = pickle.loads(pickle.dumps(value))
    assert type(received) is type(value)
    if isinstance(value, Marked):
        assert isinstance(received, Marked)
        assert (received.kept, received.dropped, received.after) == ("k", (), 3)
    else:
        assert received == value


def test_a_field_not_pickled_needs_a_default() -> None:
    with pytest.raises(TypeError, match=r"Bad\.lines: a field that is not pickled needs a default"):
        @quick_pickle
        @dataclass(frozen=True, slots=True, kw_only=True)
        class Bad:
            lines: tuple[int, ...] = field(metadata=NOT_PICKLED)


def test_dumps_whole_keeps_the_line_tracking() -> None:
    whole = config()
    received = pickle.loads(dumps_whole({"kept": (whole, Marked(kept="k", dropped=(1, 2), after=3))}))
    received_config, marked = received["kept"]
    assert received_config == whole
    assert [s.field_lines for s in received_config.services] == [(("metadata.name", 10 + i),) for i in range(3)]
    assert received_config.pools[0].field_lines == (("spec.addresses[0]", 9),)
    assert (marked.kept, marked.dropped, marked.after) == ("k", (1, 2), 3)
    # The ordinary pickle of the same objects still leaves it out.
    assert pickle.loads(pickle.dumps(whole)).services[0].field_lines == ()
