"""Fuzzing config files through the loader, the checks and the planner: always diagnostics, never an exception.

Two generators: YAML-ish text from the characters that matter to YAML (plus
control characters and tags), and structured mutations of the shipped
examples (lines dropped, doubled, re-indented, garbage spliced in). Every
input must come back as `FILE:LINE` diagnostics or a Config the planner
accepts, never a traceback, never the loader's "internal" safety net (which
would mean a bug the net merely hid), in bounded time and memory (the files
are small; the size limit covers large ones, tests/test_config_hostile_files.py).

METALLOID_PROPERTY_EXAMPLES raises the example count for a long bug hunt.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.allocating.allocator import allocate
from supervisor.config.loading import INTERNAL, load_config_files
from supervisor.plugin_checks import plugin_validators

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SOURCES = [p.read_text() for p in sorted(EXAMPLES.glob("*.yaml"))]
SETTINGS = settings(
    max_examples=int(os.environ.get("METALLOID_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
VALIDATORS = plugin_validators()

YAML_BITS = st.sampled_from([
    "\n", " ", "  ", "- ", ": ", "? ", "[", "]", "{", "}", ",", "#", "&a ", "*a", "!!", "!!float ", "!!timestamp ",
    "!!binary ", "!!python/object ", "!x ", "'", '"', "|", ">", "---\n", "...\n", "<<: ", "~", "null", "true",
    "no", "1e400", "0x1F", ".nan", "-.inf", "2024-01-01", "10.0.0.1/33", "fd00::/120", "\x00", "\x1b", "\t",
    "\r", "\ufeff", "\u2028", "kind: ", "apiVersion: ", "metallb.io/v1beta1", "IPAddressPool", "Service",
    "metadata:\n  name: x\n", "spec:\n", "addresses:\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n",
])
GARBAGE = st.one_of(YAML_BITS, st.text(max_size=12), st.binary(max_size=8).map(lambda b: b.decode("latin-1")))


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    return "".join(draw(st.lists(GARBAGE, max_size=60)))


@st.composite
def mutated_example(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(SOURCES)).splitlines(keepends=True)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        if not lines:
            break
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        action = draw(st.sampled_from(["drop", "double", "indent", "dedent", "splice", "replace-value"]))
        line = lines[at]
        if action == "drop":
            del lines[at]
        elif action == "double":
            lines.insert(at, line)
        elif action == "indent":
            lines[at] = "  " + line
        elif action == "dedent":
            lines[at] = line.lstrip(" ")
        elif action == "splice":
            cut = draw(st.integers(min_value=0, max_value=len(line)))
            lines[at] = line[:cut] + draw(GARBAGE) + line[cut:]
        elif ": " in line:
            key = line.split(": ", 1)[0]
            lines[at] = f"{key}: {draw(GARBAGE)}\n"
    return "".join(lines)


def check_and_plan(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    config, diagnostics = load_config_files([str(path)], validators=VALIDATORS)
    internal = [str(d) for d in diagnostics if d.name == INTERNAL]
    assert not internal, internal
    for diagnostic in diagnostics:
        # FILE:LINE: Kind/name: message, about this very file.
        assert diagnostic.source.file == str(path) and diagnostic.source.line >= 0, str(diagnostic)
        assert str(diagnostic).startswith(f"{path}:{diagnostic.source.line}: {diagnostic.kind}/"), str(diagnostic)
    if config is None:
        assert any(d.is_error for d in diagnostics)
    else:
        allocate(config)  # the planner takes whatever the checks let through


@SETTINGS
@given(text=yamlish())
def test_yamlish_text_is_always_diagnosed(tmp_path: Path, text: str) -> None:
    check_and_plan(tmp_path, text)


@SETTINGS
@given(text=mutated_example())
def test_mutated_examples_are_always_diagnosed(tmp_path: Path, text: str) -> None:
    check_and_plan(tmp_path, text)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes_are_always_diagnosed(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_bytes(data)
    config, diagnostics = load_config_files([str(path)], validators=VALIDATORS)
    assert not [d for d in diagnostics if d.name == INTERNAL]
    assert config is not None or any(d.is_error for d in diagnostics)
