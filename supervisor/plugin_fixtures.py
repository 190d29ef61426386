"""pytest fixtures for announcer plugin tests (the public testing kit, `supervisor.plugin_testing`).

Enable them in your plugin's tests/conftest.py:

    pytest_plugins = ["supervisor.plugin_fixtures"]

`plugin_state_dir`: an empty state dir for the recovery file, per test.
`announcer_driver`: builds `AnnouncerDriver`s on that state dir and stops
every one still running when the test ends (so a failing test leaves no
announcement behind in whatever your plugin talks to); annotate it
`DriverFactory`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.plugin_testing import AnnouncerDriver

DriverFactory = Callable[..., AnnouncerDriver]


@pytest.fixture
def plugin_state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def announcer_driver(plugin_state_dir: Path) -> Iterator[DriverFactory]:
    made: list[AnnouncerDriver] = []

    def make(plugin: Any, protocol: str, **kwargs: Any) -> AnnouncerDriver:
        kwargs.setdefault("state_dir", plugin_state_dir)
        driver = AnnouncerDriver(plugin, protocol, **kwargs)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        if driver.announcer is not None:
            driver.stop()
