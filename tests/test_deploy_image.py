"""The image's inputs are pinned: base image by digest, every dependency by version and hash.

Offline checks of deploy/Dockerfile and the locks (the image itself cannot be
built here): the runtime lock covers pyproject's dependencies with versions
their specifiers allow, every pin carries hashes, the build lock covers the
build backend, and the Dockerfile installs with --require-hashes from a
digest-pinned base.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of a pip-compile --generate-hashes file."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in (ROOT / "deploy" / lock).read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (match.group(2), [])
        elif current and line.strip().startswith("--hash=sha256:"):
            digest = line.strip().removeprefix("--hash=sha256:").rstrip(" \\")
            found[current][1].append(digest)
        elif not line.startswith(" "):
            current = None
    return found


@pytest.mark.parametrize(("lock", "requirements"), [
    ("requirements.lock", PYPROJECT["project"]["dependencies"]),
    ("requirements-build.lock", PYPROJECT["build-system"]["requires"]),
], ids=["runtime", "build"])
def test_the_lock_covers_pyprojects_requirements(lock: str, requirements: list[str]) -> None:
    locked = pins(lock)
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} (pyproject.toml) is missing from deploy/{lock}; regenerate it"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"deploy/{lock} pins {name}=={version}, which pyproject.toml's {text!r} excludes; regenerate it")


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-build.lock"])
def test_every_pin_has_hashes(lock: str) -> None:
    locked = pins(lock)
    assert locked
    for name, (_, hashes) in locked.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{name} has no valid hash"


def test_the_base_image_is_pinned_by_digest_in_every_stage() -> None:
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, flags=re.M)
    assert len(froms) == 2
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    assert len(set(froms)) == 1  # build and runtime on the same base


def test_the_image_installs_only_hashed_dependencies() -> None:
    assert "--require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.lock" in DOCKERFILE
    assert "--require-hashes --no-deps -r requirements-build.lock" in DOCKERFILE
    # metalloid itself is built without fetching anything unhashed.
    assert "pip wheel --no-cache-dir --no-deps --no-build-isolation" in DOCKERFILE
    assert "--find-links=/wheels metalloid" not in DOCKERFILE


def test_the_build_context_keeps_the_locks() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy" not in ignored and "deploy/*.lock" not in ignored
