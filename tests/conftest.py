"""Fixtures shared by several test modules (helpers to import are in `runtime_helpers` and `fakeapi.kube`).

Only fixtures that were copied with the same meaning live here. A module that
needs something else under the same name (a server with a short history, with
the runbook's objects, a kubernetes-client `client`) defines its own fixture,
which pytest prefers to these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from supervisor.kubernetes.client import RawClient
from tests.fakeapi import FakeApiServer


@pytest.fixture()
def api() -> Iterator[FakeApiServer]:
    """An empty fake Kubernetes API server, stopped after the test."""
    with FakeApiServer() as server:
        yield server


@pytest.fixture()
def client(api: FakeApiServer) -> Iterator[RawClient]:
    """metalloid's own API client connected to `api`."""
    c = RawClient.connect(host=api.url)
    yield c
    c.close()
