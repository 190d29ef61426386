"""The third-party example plugin stays what docs/plugins.md says it is.

Its behaviour is tested by its own tests (examples/thirdparty/tests, in the
suite's testpaths), written only against the public API and testing kit.
Here: it is installed under the entry-point group, it and its tests import
nothing private, it declares the plugin API it needs, and the docs show it
verbatim.
"""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest

metalloid_example_plugin = pytest.importorskip("metalloid_example_plugin")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "thirdparty"
PUBLIC_FOR_TESTS = {"supervisor.api", "supervisor.plugin_testing", "supervisor.plugin_fixtures"}


def supervisor_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    found |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return {m for m in found if m == "supervisor" or m.startswith("supervisor.")}


def test_the_entry_point_is_installed() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="metalloid.announcers")}
    assert names.get("example") == "metalloid_example_plugin"


def test_the_plugin_imports_only_the_public_api() -> None:
    assert supervisor_imports(Path(metalloid_example_plugin.__file__)) == {"supervisor.api"}


@pytest.mark.parametrize("path", sorted((EXAMPLE / "tests").glob("*.py")), ids=lambda p: p.name)
def test_its_tests_import_only_the_public_api_and_testing_kit(path: Path) -> None:
    assert supervisor_imports(path) <= PUBLIC_FOR_TESTS


def test_it_declares_the_plugin_api_it_needs() -> None:
    from supervisor.api import METALLOID_PLUGIN_API

    assert metalloid_example_plugin.METALLOID_PLUGIN_API_REQUIRED == METALLOID_PLUGIN_API


def test_docs_show_the_example_verbatim() -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert Path(metalloid_example_plugin.__file__).read_text() in docs
    assert "pip install -e examples/thirdparty" in docs
