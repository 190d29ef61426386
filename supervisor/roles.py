"""The names a process goes by: its mode, its role among the workers, its Kubernetes role.

String enums, so that /status, logs, metrics labels and user agents keep the
plain words ("kubernetes", "allocator", "speaker") while the code compares
members instead of spelling strings.
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """Where the config and the cluster's state come from."""

    STANDALONE = "standalone"  # config files; state file; membership among the configured Nodes
    KUBERNETES = "kubernetes"  # the API server


class Role(StrEnum):
    """A worker's role: what the supervisor sends it and replays to it after a restart."""

    WATCHER = "watcher"
    ALLOCATOR = "allocator"
    MEMBERSHIP = "membership"
    ANNOUNCER = "announcer"


class KubernetesRole(StrEnum):
    """Which Kubernetes command runs: the cluster-wide controller or a node's speaker."""

    CONTROLLER = "controller"
    SPEAKER = "speaker"
