"""Bytes each worker role receives per config change (issue 14: workers receive what their role needs).

    .venv/bin/python bench/payloads.py [--services 1000]

No processes, no network: the config is loaded as the file watcher loads it
(standalone) or built as the Kubernetes watcher builds it (speaker and
controller, with the allocation the watcher attaches), then routed by the
supervisor's own `routing.route`; every message it sends is pickled as the
worker pipes pickle it (`multiprocessing`'s ForkingPickler) and measured.
The "whole" column is the same message carrying the whole config, line
tracking included, the watcher's warnings and the whole allocation: what
every role received before issue 14 (membership already got Nodes and
Settings only), measured in the same run.
"""

from __future__ import annotations

import argparse
import copyreg
import dataclasses
import io
import pickle
import sys
import tempfile
from collections import defaultdict
from dataclasses import replace
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisor.allocating.allocator import allocate
from supervisor.allocating.worker import AllocatorCore
from supervisor.kubernetes.watcher import build_config
from supervisor.messages import AllocationDone, ConfigLoaded, MembersChanged, ViewChanged
from supervisor.roles import Mode, Role
from supervisor.supervising.routing import route
from supervisor.supervising.state import RoutedState
from supervisor.watching.file_watcher import FileWatcherCore
from supervisor.watching.loader import default_loader
from tests.fakeapi.kube import pool, service
from tests.runtime_helpers import NODE, config_text


def size(message: object) -> int:
    return len(ForkingPickler.dumps(message))


class _WithLines(ForkingPickler):
    """Pickles config objects with their `field_lines`, as every worker received them before issue 14."""

    def reducer_override(self, obj: object) -> object:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and hasattr(obj, "field_lines"):
            # The same reduction the dataclass had (copyreg.__newobj__ and the list of field values), with the lines.
            return copyreg.__newobj__, (type(obj),), [getattr(obj, f.name) for f in dataclasses.fields(obj)]
        return NotImplemented


def size_with_lines(message: object) -> int:
    buffer = io.BytesIO()
    _WithLines(buffer, pickle.DEFAULT_PROTOCOL).dump(message)
    return len(buffer.getvalue())


def whole(message: object, loaded: ConfigLoaded, done: AllocationDone) -> int:
    """The bytes of `message` as every role got it before issue 14: the whole config, line tracking included."""
    match message:
        case ConfigLoaded():
            message = replace(message, config=loaded.config, warnings=loaded.warnings, allocation=loaded.allocation)
        case ViewChanged(view=view):
            message = ViewChanged(view=replace(view, config=loaded.config))
        case AllocationDone():
            message = done
    return size_with_lines(message)


def measure(title: str, loaded: ConfigLoaded, mode: Mode) -> None:
    assert any(s.field_lines for s in loaded.config.services), "no line tracking: the baseline would be wrong"
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    state = RoutedState(node_name="n1", mode=mode)
    routed = route(state, loaded)
    sent = list(routed.outgoing)
    assert routed.config is not None, "the config was not accepted"
    if loaded.allocation is not None:
        done = AllocationDone(generation=routed.config.generation, result=loaded.allocation)
    else:
        allocator_message = next(m for role, m in sent if role is Role.ALLOCATOR)
        assert isinstance(allocator_message, ConfigLoaded)
        done = next(iter(AllocatorCore(state_dir=None, previous={}).handle(allocator_message)))
        assert isinstance(done, AllocationDone)
    routed = route(routed.state, done)
    sent += routed.outgoing
    members = route(routed.state, MembersChanged(alive=frozenset({"n1", "n2"}), changed_at=1.0))
    for role, message in sent:
        row = rows[(role.value, "config change")]
        row[0] += size(message)
        row[1] += whole(message, loaded, done)
    for role, message in members.outgoing:
        row = rows[(role.value, "membership change")]
        row[0] += size(message)
        row[1] += whole(message, loaded, done)
    before = whole(loaded, loaded, done)
    print(f"\n{title}: watcher -> supervisor {size(loaded):,} bytes (with the line tracking: {before:,})")
    print(f"  {'role':<11} {'per':<18} {'now':>11} {'whole':>11}  ratio")
    for (role, per), (now, before) in sorted(rows.items()):
        print(f"  {role:<11} {per:<18} {now:>11,} {before:>11,}  {now / before:.2f}")


def standalone(services: int) -> ConfigLoaded:
    """The file watcher's message."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(config_text(services) + NODE.format(name="n2"))
        out = FileWatcherCore([str(path)], load=default_loader("n1"), debounce_seconds=0.0).reload(reason="bench")
    loaded = out[0]
    assert isinstance(loaded, ConfigLoaded), loaded
    return loaded


def kubernetes(services: int) -> ConfigLoaded:
    """The Kubernetes watcher's message, with the allocation the controller attaches (a speaker: Service status)."""
    objects = [pool("first-pool", "10.20.0.0/16"),
               {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                "metadata": {"name": "l2", "namespace": "metallb-system"}, "spec": {}},
               *({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}} for n in ("n1", "n2")),
               *(service(f"svc-{i}") for i in range(services))]
    config, diagnostics = build_config(objects, lb_class=None)
    return ConfigLoaded(generation=1, config=config, origin="kubernetes", warnings=tuple(diagnostics),
                        allocation=allocate(config))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()
    print(f"pickled bytes each role receives, {args.services} Services, one pool, one L2Advertisement, two Nodes")
    measure("standalone (metalloid run)", standalone(args.services), Mode.STANDALONE)
    measure("kubernetes (speaker; the controller's allocator gets the same)", kubernetes(args.services),
            Mode.KUBERNETES)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
