"""docs/plugins.md, the plugin contract's reference, says what the code does.

The hook table lists every hook of supervisor/hookspecs.py with its exact
signature and nothing else; the lifecycle table lists every method of the
Announcer and Recoverable Protocols; the host table every member of
AnnouncerHost; the status table every key of AnnouncerStatus; the testing kit
section every name of the kit; the contract history every public name once,
ending at the current version.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from supervisor import hookspecs
from supervisor.announcing import api as announcing

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def section(title: str) -> str:
    start = DOCS.index(f"\n## {title}\n")
    end = DOCS.find("\n## ", start + 1)
    return DOCS[start:end if end != -1 else None]


def first_cells(text: str) -> list[str]:
    """The first cell of every row of the Markdown tables in `text` (header and rule rows excluded)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    cells = [row.split(" | ")[0].removeprefix("| ").strip() for row in rows]
    return [c for c in cells if c not in ("hook", "call", "member", "key") and not set(c) <= {"-", "|"}]


def hook_signature(name: str) -> str:
    signature = inspect.signature(getattr(hookspecs, name))
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"`{name}({parameters}) -> {signature.return_annotation}`"


def hooks() -> list[str]:
    return sorted(name for name, value in vars(hookspecs).items()
                  if name.startswith("metalloid_") and callable(value))


def test_every_hook_is_documented_with_its_signature_and_nothing_stale() -> None:
    documented = first_cells(section("The hooks"))
    assert documented == [hook_signature(name) for name in hooks()]


@pytest.mark.parametrize("name", hooks())
def test_each_hook_is_a_hookspec_with_a_docstring(name: str) -> None:
    function: Any = getattr(hookspecs, name)
    assert getattr(function, "metalloid_spec", None) is not None, f"{name} is not marked @hookspec"
    assert (function.__doc__ or "").strip(), f"{name} has no docstring"


def protocol_methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}


def test_the_lifecycle_table_lists_every_announcer_method() -> None:
    documented = {re.match(r"`(\w+)\(", cell).group(1)  # type: ignore[union-attr]
                  for cell in first_cells(section("The Announcer lifecycle"))}
    assert documented == protocol_methods(announcing.Announcer) | protocol_methods(announcing.Recoverable) | {
        "__init__"}


def test_the_host_table_lists_every_host_member() -> None:
    documented = {re.match(r"`host\.(\w+)", cell).group(1)  # type: ignore[union-attr]
                  for cell in first_cells(section("What the host gives you: facts, settings, metrics, memory"))}
    members = {name for name in vars(announcing.AnnouncerHost) if not name.startswith("_")}
    assert documented == members


def test_the_status_table_lists_every_status_key() -> None:
    documented = {cell.strip("`") for cell in first_cells(section("Status and readiness"))} - {"anything else"}
    assert documented == set(get_type_hints(announcing.AnnouncerStatus))


def test_the_documented_version_is_the_code_s() -> None:
    from supervisor.api import METALLOID_PLUGIN_API

    major, minor = METALLOID_PLUGIN_API
    assert f"version **{major}.{minor}**" in DOCS and f"now **({major}, {minor})**" in DOCS


def test_the_testing_kit_section_names_every_public_name_of_the_kit() -> None:
    from supervisor import plugin_fixtures, plugin_testing

    fixtures = {"DriverFactory", "announcer_driver", "plugin_state_dir"}
    assert all(hasattr(plugin_fixtures, name) for name in fixtures)
    text = section("Test it")
    assert sorted(name for name in {*plugin_testing.__all__, *fixtures} if f"`{name}" not in text) == []


def test_the_kubernetes_diagnostic_source_is_what_the_docs_say() -> None:
    from supervisor.kubernetes.watcher import ORIGIN

    assert f"In Kubernetes the file is `{ORIGIN}` and the line 0" in DOCS


def history() -> list[tuple[tuple[int, int], list[str]]]:
    """The Compatibility section's table: (version, the names it added) per row."""
    rows = []
    for line in section("Compatibility").splitlines():
        match = re.match(r"\| (\d+)\.(\d+) \| (.*) \|$", line)
        if match:
            # Only the names a row adds: a remark in parentheses after a space describes them
            # (a call such as `FakeHost(mode=...)` is a change to a name, not a new one).
            added = re.sub(r" \([^)]*\)", "", match.group(3))
            rows.append(((int(match.group(1)), int(match.group(2))), re.findall(r"`(\w+)`", added)))
    return rows


def test_the_contract_history_is_every_public_name_once_and_ends_at_the_current_version() -> None:
    from supervisor import api, plugin_fixtures, plugin_testing

    rows = history()
    assert rows, "no contract history table"
    assert rows[-1][0] == api.METALLOID_PLUGIN_API
    assert [version for version, _ in rows] == sorted(version for version, _ in rows)
    documented = [name for _, names in rows for name in names]
    assert sorted(set(documented)) == sorted(documented), "a name is listed twice"
    fixtures = {"DriverFactory", "announcer_driver", "plugin_state_dir"}
    assert all(hasattr(plugin_fixtures, name) for name in fixtures)
    public = {*api.__all__, *plugin_testing.__all__, *fixtures, *hooks()}
    assert set(documented) == public


def test_the_documented_timings_are_the_code_s() -> None:
    import argparse

    from supervisor.announcing.host import REPORT_SECONDS
    from supervisor.commands import run
    from supervisor.supervising import backoff
    from supervisor.supervising.settings import AnnouncerSettings, WorkerSettings
    from supervisor.supervising.specs import SupervisorSettings
    from supervisor.supervising.status import LATE_MIN_SECONDS

    tick_ms = round(AnnouncerSettings(name="a", node_name="n").tick_seconds * 1000)
    heartbeat = WorkerSettings(name="a", node_name="n").heartbeat_seconds
    hung = SupervisorSettings(node_name="n").hung_seconds
    parser = argparse.ArgumentParser()
    run.add_arguments(parser)
    assert parser.parse_args([]).hung_timeout == hung
    for phrase in (f"about every {tick_ms} ms", f"at most every {REPORT_SECONDS:g} s",
                   f"heartbeat every {heartbeat:g} s", f"(at least {LATE_MIN_SECONDS:g} s)",
                   f"deadline is {hung:g} s (`metalloid run --hung-timeout` changes it)",
                   f"({backoff.DEFAULT_MULTIPLIER * 1000:g} ms first, at most {backoff.DEFAULT_MAX:g} s)",
                   f"restarts ({backoff.DEFAULT_BUDGET}) within", f"`--restart-window` ({backoff.DEFAULT_WINDOW:g} s)"):
        assert phrase in " ".join(DOCS.split()), phrase
