"""Hostile or mistaken config files: every one is a `FILE:LINE` diagnostic, never a traceback or a hang.

The cases are the ones found by hand and by fuzzing for issue 15; the fuzz
suite itself is tests/test_fuzz_config.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor import cli
from supervisor.config.loading import MAX_CONFIG_BYTES, MAX_NESTING, load_config_files, load_text
from tests.runtime_helpers import config_text

LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{b}: &{b} [{','.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True))
CHAIN = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, MAX_NESTING + 5))

CASES = [
    # (id, text, expected line, words the message must contain)
    ("nul", "a: 1\nb: x\x00y\n", 2, "control character 0x00"),
    ("stray-esc", config_text(1).replace("kind: Service", "kind: Ser\x1bvice"), None, "0x1b"),
    ("float-tag", "a: 1\nb: !!float 'x'\n", 2, "!!float value 'x'"),
    ("timestamp-tag", "b: !!timestamp 'x'\n", 1, "!!timestamp is not supported"),
    ("binary-tag", "b: !!binary aGVsbG8=\n", 1, "!!binary is not supported"),
    ("python-tag", "b: !!python/object/apply:os.system ['true']\n", 1, "is not supported"),
    ("set-tag", "b: !!set {x: null}\n", 1, "!!set is not supported"),
    ("unknown-tag", "b: !mine x\n", 1, "!mine is not supported"),
    ("huge-int", "b: !!int '" + "9" * 5000 + "'\n", 1, "cannot read !!int value"),
    ("flow-nesting-1000", "a: " + "[" * 1000 + "]" * 1000 + "\n", 1, "nested more than"),
    ("block-nesting-1000", "".join(" " * i + "- \n" for i in range(0, 2000, 2)), None, "nested more than"),
    ("nesting-just-over", "a: " + "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1) + "\n", 1, "nested more than"),
    ("alias-chain", CHAIN, 1, "nested more than"),
    ("billion-laughs", LAUGHS, 1, "aliases (*name) expand this document"),
    ("recursive-alias", "a: &a [*a]\n", 1, "recursive"),
    ("bad-merge", "b: {<<: 3}\n", 1, "merging"),
]


@pytest.mark.parametrize(("text", "line", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_text_is_a_located_diagnostic(text: str, line: int | None, words: str) -> None:
    documents, diagnostics = load_text(text, file="c.yaml")
    assert documents == []
    [diagnostic] = diagnostics
    assert diagnostic.is_error and words in diagnostic.message
    assert str(diagnostic).startswith(f"c.yaml:{line if line is not None else ''}")


def test_esc_diagnostic_names_its_line_and_column() -> None:
    text = config_text(1)
    lines = text.splitlines(keepends=True)
    row = next(i for i, ln in enumerate(lines) if ln.startswith("kind: Service"))
    lines[row] = "kind: Ser\x1bvice\n"
    [diagnostic] = load_text("".join(lines), file="c.yaml")[1]
    assert str(diagnostic).startswith(f"c.yaml:{row + 1}: YAML/encoding: control character 0x1b at column 10")


def test_nesting_at_the_limit_is_fine() -> None:
    documents, diagnostics = load_text("a: " + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1), file="c.yaml")
    assert diagnostics == [] and len(documents) == 1


def test_core_types_only_dates_stay_strings() -> None:
    [document], diagnostics = load_text("a: 2024-01-01\nb: =\nc: 1.5\nd: ~\ne: true\nf: yes\n", file="c.yaml")
    assert diagnostics == []
    assert document.body == {"a": "2024-01-01", "b": "=", "c": 1.5, "d": None, "e": True, "f": "yes"}


def test_merge_keys_still_work() -> None:
    [document], diagnostics = load_text("a: &a {x: 1}\nb: {<<: *a, y: 2}\n", file="c.yaml")
    assert diagnostics == [] and document.body["b"] == {"x": 1, "y": 2}


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    config, [diagnostic] = load_config_files([str(fifo)])
    assert config is None
    assert str(diagnostic) == (f"{fifo}:1: File/c.yaml: refused: is a FIFO (named pipe), not a regular file; "
                               "point metalloid at a regular file")


def test_a_symlink_to_dev_zero_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "c.yaml"
    link.symlink_to("/dev/zero")
    _, [diagnostic] = load_config_files([str(link)])
    assert "is a character device, not a regular file" in diagnostic.message


def test_a_symlink_to_a_regular_file_is_followed(tmp_path: Path) -> None:
    # ConfigMap volumes are symlinks into a `..data` directory.
    target = tmp_path / "real.yaml"
    target.write_text(config_text(1))
    link = tmp_path / "c.yaml"
    link.symlink_to(target)
    config, diagnostics = load_config_files([str(link)])
    assert config is not None and not any(d.is_error for d in diagnostics)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    _, [diagnostic] = load_config_files([str(tmp_path)])
    assert "is a directory, not a regular file" in diagnostic.message


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "c.yaml"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB of size, nothing to read
    _, [diagnostic] = load_config_files([str(big)])
    assert diagnostic.message == ("refused: is 50.0 MiB, over the 1.0 MiB limit for a config file; check that the "
                                  "path names the right file")


def test_a_file_just_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = config_text(1)
    path.write_text(text + "#" * (MAX_CONFIG_BYTES - len(text.encode())))
    assert path.stat().st_size == MAX_CONFIG_BYTES
    config, _ = load_config_files([str(path)])
    assert config is not None


def test_check_prints_diagnostics_for_hostile_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for name, text, *_ in CASES:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        paths.append(str(path))
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert cli.main(["check", *paths, str(fifo)]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert out.count(": YAML/") + out.count(": File/") == len(CASES) + 1


def test_check_as_the_systemd_unit_runs_it_prints_no_traceback(tmp_path: Path) -> None:
    # ExecStartPre=metalloid check: a real process, with its own stderr.
    path = tmp_path / "metalloid.yaml"
    path.write_text(config_text(1).replace("kind: Service", "kind: Ser\x1bvice"))
    done = subprocess.run([sys.executable, "-m", "supervisor.cli", "check", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert f"{path}:" in done.stdout and "control character 0x1b" in done.stdout


def test_an_internal_error_is_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(1))

    def broken(config: object) -> list[object]:
        raise KeyError("boom")

    config, diagnostics = load_config_files([str(path)], validators=[broken])  # type: ignore[list-item]
    assert config is None
    assert str(diagnostics[-1]).startswith(f"{path}:1: Config/internal: metalloid failed while checking this "
                                           "config (KeyError: 'boom'); this is a bug")
