"""Import layering, checked on the source (STYLE.md point 7).

- the host (`supervisor`) never imports the shipped plugins;
- a shipped plugin imports metalloid only through the public `supervisor.api`,
  so a third-party plugin can do everything it does;
- the pure core (config model, allocator, election, membership codec and
  detector) imports no I/O: no sockets, processes, Kubernetes or netlink.
"""

from __future__ import annotations

import ast
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
    "plugins/bgp_stub/routes.py",
    "plugins/bgp_stub/validation.py",
    "supervisor/electing/election.py",
    "supervisor/membership/codec.py",
    "supervisor/membership/detector.py",
    "supervisor/membership/consistency.py",
    "supervisor/membership/fallback.py",
    "supervisor/supervising/lifecycle.py",
    "supervisor/supervising/backoff.py",
    "supervisor/supervising/following.py",
    "supervisor/announcing/enabling.py",
    "supervisor/config/announcer_config.py",
]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
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
