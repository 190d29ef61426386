"""What `metalloid COMMAND` imports before it runs: only that command's module, and no plugin machinery
in `metalloid run`'s start-up check (BENCHMARKS.md, issue 16's fourth session: both were on the way to ready).

Fresh interpreters: this test process has imported everything already.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]

COMMANDS_PROBE = """
import sys
from supervisor.cli import build_parser
parser = build_parser({command!r})
print(sorted(m for m in sys.modules if m.startswith("supervisor.commands.")))
print(parser.parse_args({argv!r}).command)
"""


def _probe(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


@pytest.mark.parametrize(("command", "argv"),
                         [("run", ["run"]), ("check", ["check", "c.yaml"]), ("status", ["status"])])
def test_a_command_imports_only_its_own_module(command: str, argv: list[str]) -> None:
    modules, parsed = _probe(COMMANDS_PROBE.format(command=command, argv=argv))
    assert ast.literal_eval(modules) == [COMMANDS[command]]
    assert parsed == command


def test_without_a_command_every_command_is_listed() -> None:
    for first in (None, "-h", "no-such-command"):
        modules, _ = _probe(COMMANDS_PROBE.format(command=first, argv=[]))
        assert ast.literal_eval(modules) == sorted(COMMANDS.values()), first


def test_an_unknown_command_is_refused_naming_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "supervisor.cli", "no-such-command"], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 2
    assert "invalid choice: 'no-such-command'" in out.stderr
    assert all(repr(name) in out.stderr for name in COMMANDS)


CHECK_PROBE = """
import sys
from supervisor.commands.run import select_announcers
from supervisor.config.model import Config
decisions, problem = select_announcers(Config(), "layer2")
print([d.protocol for d in decisions], problem)
print(sorted(m for m in sys.modules if m == "pluggy" or m in ("supervisor.hookspecs", "supervisor.plugins_loader",
                                                              "supervisor.api")))
"""


def test_the_start_up_checks_announcer_decision_imports_no_plugin_machinery() -> None:
    decided, modules = _probe(CHECK_PROBE)
    assert decided == "['layer2'] None"
    assert ast.literal_eval(modules) == []
