"""Fixtures shared by several test modules (helpers to import are in `runtime_helpers` and `fakeapi.kube`).

Only fixtures that were copied with the same meaning live here. A module that
needs something else under the same name (a server with a short history, with
the runbook's objects, a kubernetes-client `client`) defines its own fixture,
which pytest prefers to these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from hypothesis import HealthCheck, settings

from supervisor.kubernetes.client import RawClient
from tests.fakeapi import FakeApiServer
from tests.runbook import RUNBOOK_L2, RUNBOOK_POOL

# Property tests assert behaviour, not time: hypothesis's per-example deadline and its too_slow health
# check are timing checks, and on a loaded 2-core machine they failed tests whose properties held
# (test_election's input-order property under a load average of 10). A test may still set its own.
settings.register_profile("metalloid", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("metalloid")


@pytest.fixture()
def api() -> Iterator[FakeApiServer]:
    """An empty fake Kubernetes API server, stopped after the test."""
    with FakeApiServer() as server:
        yield server


@pytest.fixture()
def runbook_api() -> Iterator[FakeApiServer]:
    """A fake API server holding the runbook's IPAddressPool and L2Advertisement, with 0.2 s bookmarks."""
    with FakeApiServer(bookmark_interval=0.2) as server:
        server.create(yaml.safe_load(RUNBOOK_POOL))
        server.create(yaml.safe_load(RUNBOOK_L2))
        yield server


@pytest.fixture()
def client(api: FakeApiServer) -> Iterator[RawClient]:
    """metalloid's own API client connected to `api`."""
    c = RawClient.connect(host=api.url)
    yield c
    c.close()
