"""Import layering, checked on the source (STYLE.md point 7; docs/architecture.md draws it).

- the host (`supervisor`) never imports the shipped plugins;
- a shipped plugin imports metalloid only through the public `supervisor.api`,
  so a third-party plugin can do everything it does;
- the pure core (config model, allocator, election, membership codec and
  detector) imports no I/O: no sockets, processes, Kubernetes or netlink;
- every host module sits in one of `LAYERS` and imports only its own layer or
  lower ones, directly or through any chain of imports (function-level and
  TYPE_CHECKING imports count: they are dependencies all the same);
- no two modules import each other, directly or in a ring.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

IO_MODULES = {"socket", "subprocess", "multiprocessing", "kubernetes", "pyroute2", "scapy", "prometheus_client",
              "http", "urllib", "threading", "select", "signal"}
PURE = [
    "supervisor/config/model.py",
    "supervisor/config/diagnostics.py",
    "supervisor/config/parsing.py",
    "supervisor/config/validation.py",
    "supervisor/config/addresses.py",
    "supervisor/allocating/allocator.py",
    "supervisor/allocating/results.py",
    "supervisor/allocating/freeips.py",
    "supervisor/allocating/poolselect.py",
    "supervisor/allocating/sharing.py",
    "supervisor/config/fields.py",
    "supervisor/config/core_kinds.py",
    "supervisor/config/selectors.py",
    "plugins/layer2/planning.py",
    "plugins/layer2/frames.py",
    "plugins/layer2/gratuitous.py",
    "plugins/layer2/conflicts.py",
    "plugins/layer2/ownership.py",
    "plugins/layer2/takeover.py",
    "plugins/layer2/stats.py",
    "plugins/layer2/duplicates.py",
    "plugins/layer2/status.py",
    "plugins/bgp/planning.py",
    "plugins/bgp/validation.py",
    "supervisor/electing/election.py",
    "supervisor/membership/codec.py",
    "supervisor/membership/detector.py",
    "supervisor/membership/deadline.py",
    "supervisor/membership/consistency.py",
    "supervisor/membership/fallback.py",
    "supervisor/supervising/lifecycle.py",
    "supervisor/supervising/routing.py",
    "supervisor/supervising/stopping.py",
    "supervisor/roles.py",
    "supervisor/supervising/backoff.py",
    "supervisor/supervising/following.py",
    "supervisor/announcing/enabling.py",
    "supervisor/config/announcer_config.py",
    "supervisor/config/lbclass.py",
    "supervisor/config/parts.py",
    "supervisor/pickling.py",
]


# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # Pure data and functions, plus the small file helpers they read with.
    ("core", ("supervisor.__init__", "supervisor.roles", "supervisor.files", "supervisor.logs", "supervisor.pickling",
              "supervisor.config",
              "supervisor.electing",
              "supervisor.allocating", "supervisor.membership.codec", "supervisor.membership.detector",
              "supervisor.membership.deadline", "supervisor.membership.consistency", "supervisor.membership.fallback",
              "supervisor.membership.keys",
              "supervisor.supervising.lifecycle", "supervisor.supervising.backoff", "supervisor.serving.options")),
    # What processes and plugins agree on: messages, the plugin API and hooks, the worker runtime,
    # the documents /status serves.
    ("contracts", ("supervisor.messages", "supervisor.api", "supervisor.hookspecs", "supervisor.plugin_names",
                   "supervisor.plugins_loader", "supervisor.bpf", "supervisor.ebpf", "supervisor.batchio",
                   "supervisor.plugin_checks", "supervisor.announcing.__init__",
                   "supervisor.announcing.api", "supervisor.announcing.enabling",
                   "supervisor.announcing.recovery", "supervisor.supervising.settings",
                   "supervisor.supervising.channels", "supervisor.supervising.child", "supervisor.supervising.memory",
                   "supervisor.serving.documents",
                   "supervisor.serving.snapshot", "supervisor.serving.metrics", "supervisor.serving.tables",
                   "supervisor.serving.explaining")),
    # The worker processes and the HTTP server, each behind the contracts.
    ("workers", ("supervisor.allocating.worker", "supervisor.announcing.host", "supervisor.membership",
                 "supervisor.kubernetes", "supervisor.watching", "supervisor.serving")),
    # The supervisor process: spawns the workers and routes their messages.
    ("supervisor", ("supervisor.supervising",)),
    # Entry points: the CLI, its commands, the lab and the plugin test kit.
    ("commands", ("supervisor.cli", "supervisor.commands", "supervisor.lab", "supervisor.plugin_testing",
                  "supervisor.plugin_fixtures")),
]


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def host_graph() -> dict[str, set[str]]:
    """Every host module and the host modules it imports (anywhere in the file)."""
    modules = {module_name(path): path for path in sources("supervisor")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for imported in imports_of(path, with_names=True):
            if imported in modules:
                found.add(imported)
            elif imported + ".__init__" in modules and imported != "supervisor":
                found.add(imported + ".__init__")
        graph[name] = found - {name}
    return graph


def imports_of(path: Path, *, with_names: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if with_names:  # `from supervisor import hookspecs` imports the module supervisor.hookspecs
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", sources("supervisor"), ids=lambda p: str(p.relative_to(ROOT)))
def test_host_never_imports_plugins(path: Path) -> None:
    bad = {m for m in imports_of(path) if m == "plugins" or m.startswith("plugins.")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: the host must not depend on a plugin"


@pytest.mark.parametrize("path", sources("plugins"), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_use_only_the_public_api(path: Path) -> None:
    bad = {m for m in imports_of(path) if m.startswith("supervisor") and m != "supervisor.api"}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: plugins may import only supervisor.api"


@pytest.mark.parametrize("relpath", PURE)
def test_pure_core_does_no_io(relpath: str) -> None:
    bad = {m for m in imports_of(ROOT / relpath) if m.split(".")[0] in IO_MODULES}
    assert not bad, f"{relpath} imports {sorted(bad)}: the pure core must not do I/O"


def test_pure_core_modules_exist() -> None:
    # The list above names the core; a rename must update it, not silently skip it.
    missing = [p for p in PURE if not (ROOT / p).exists()]
    assert not missing, f"pure-core modules missing (renamed? update PURE): {missing}"


def test_every_host_module_has_a_layer() -> None:
    # A new module must be placed (docs/architecture.md too), not silently exempt.
    unplaced = sorted(m for m in host_graph() if layer_of(m) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


def upward_chains(graph: dict[str, set[str]], layer: Callable[[str], int | None]) -> list[list[str]]:
    """For each module, the first import chain that leads it to a module of a higher layer."""
    chains = []
    for start in sorted(graph):
        level = layer(start)
        if level is None:
            continue
        seen = {start}
        paths = [[start]]
        while paths:
            path = paths.pop(0)  # breadth first: the shortest chain is the clearest message
            nxt = next((m for m in sorted(graph.get(path[-1], ())) if (layer(m) or 0) > level), None)
            if nxt is not None:
                chains.append([*path, nxt])
                break
            for child in sorted(graph.get(path[-1], set()) - seen):
                seen.add(child)
                paths.append([*path, child])
    return chains


def test_no_module_reaches_a_higher_layer() -> None:
    """Directly or through any chain of imports."""
    bad = [f"{' -> '.join(chain)}: {LAYERS[layer_of(chain[0]) or 0][0]} reaches {LAYERS[layer_of(chain[-1]) or 0][0]}"
           for chain in upward_chains(host_graph(), layer_of)]
    assert not bad, "lower layers importing higher ones:\n" + "\n".join(bad)


def test_an_indirect_upward_import_is_caught() -> None:
    """A guard on the guard: a chain through a module of the same layer is found, not only a direct import."""
    layers = {"core.a": 0, "core.b": 0, "core.c": 0, "top.x": 1}
    graph = {"core.a": {"core.b"}, "core.b": {"core.c"}, "core.c": {"top.x"}, "top.x": {"core.a"}}
    assert upward_chains(graph, layers.get) == [["core.a", "core.b", "core.c", "top.x"], ["core.b", "core.c", "top.x"],
                                                ["core.c", "top.x"]]
    assert upward_chains({"core.a": {"core.b"}, "core.b": set(), "top.x": {"core.a"}}, layers.get) == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles() -> None:
    rings = cycles(host_graph())
    assert not rings, f"modules importing each other (a function-level import hides a ring too): {rings}"


def test_cycle_finder_finds_a_ring() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
