"""A stateful fake Kubernetes API server over real HTTP (see `server`)."""

from tests.fakeapi.server import FakeApiServer, Faults, Request
from tests.fakeapi.store import ApiError, Store

__all__ = ["ApiError", "FakeApiServer", "Faults", "Request", "Store"]
