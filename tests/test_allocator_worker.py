"""The allocator worker's core: it persists, then answers, then logs what changed (supervisor/allocating/worker.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from supervisor.allocating import statefile
from supervisor.allocating.worker import AllocatorCore
from supervisor.config.loading import load_config
from supervisor.messages import AllocationDone, ConfigLoaded
from tests.runtime_helpers import config_text


def _loaded(tmp_path: Path, services: int, generation: int) -> ConfigLoaded:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(services))
    return ConfigLoaded(generation=generation, config=load_config([str(path)]).config, origin=str(path))


def _assigned(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("ip.assigned")]


def test_the_answer_comes_after_the_state_file_and_before_the_log_lines(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="supervisor.allocating.worker")
    core = AllocatorCore(state_dir=str(tmp_path / "state"), previous={})
    answers = core.handle(_loaded(tmp_path, 20, 1))
    done = next(answers)
    assert isinstance(done, AllocationDone) and len(done.result.assignments) == 20
    # Persisted before anyone is told (a crash now loses nothing), logged after.
    assert statefile.load(str(tmp_path / "state")) == {
        key: a.ips for key, a in done.result.assignments.items()}
    assert _assigned(caplog) == []
    assert list(answers) == []
    assert len(_assigned(caplog)) == 20
    caplog.clear()
    # A reload logs only what changed.
    assert [type(m) for m in core.handle(_loaded(tmp_path, 21, 2))] == [AllocationDone]
    assert [m.split()[1] for m in _assigned(caplog)] == ["service=default/svc-20"]
