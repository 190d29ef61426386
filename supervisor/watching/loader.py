"""The file watcher's loader: `load_config_files` of the config files plus the node check.

Its own module so that `metalloid run`'s start-up check (a forked child the
whole node waits for) loads the config the watcher's way without importing
the worker around it (pipes, heartbeats) or, as it runs no plugin, pluggy
and the plugins' modules: every import there is on the way to ready.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from supervisor.config.diagnostics import Diagnostic, error
from supervisor.config.loading import load_config_files
from supervisor.config.model import Config, Source
from supervisor.config.reusing import DocumentReuse

Loader = Callable[[Sequence[str]], tuple[Config | None, list[Diagnostic]]]


def check_node(config: Config, node_name: str) -> list[Diagnostic]:
    """This node must be one of the config's Nodes, when it lists any."""
    if not config.nodes or config.node(node_name) is not None:
        return []
    names = ", ".join(sorted(n.name for n in config.nodes))
    source = config.nodes[0].source
    return [error(source, "Node", node_name,
                  f"this node (--node {node_name}) is not among the config's Nodes ({names}); add a Node named "
                  f"{node_name!r} with its InternalIP, or pass --node with one of the listed names")]


def default_loader(node_name: str, *, plugins: bool = True, reuse: DocumentReuse | None = None) -> Loader:
    """`load_config_files` plus the node check; `plugins`: run the plugins' validators too.

    `reuse`: keeps what each document parsed to, so that a reload reads only
    the documents that changed (config/reusing.py; the watcher's loader).
    """
    validators: list[Callable[[Config], list[Diagnostic]]] | None = None if plugins else []

    def load(paths: Sequence[str]) -> tuple[Config | None, list[Diagnostic]]:
        nonlocal validators
        if validators is None:
            # deferred: pluggy, importlib.metadata and the plugins' modules, ~60 ms of CPU in `metalloid
            # run`'s start-up check (plugins=False), which the node waits for (BENCHMARKS.md, 2026-12-07)
            from supervisor.plugin_checks import running_validators

            validators = running_validators()
        try:
            config, diagnostics = load_config_files(paths, validators=validators, reuse=reuse)
        except OSError as exc:
            return None, [error(Source(file=exc.filename or paths[0], line=0), "File", os.path.basename(
                str(exc.filename or paths[0])), f"cannot be read ({exc.strerror}); fix the path or its permissions")]
        if config is not None:
            problems = check_node(config, node_name)
            if problems:
                return None, diagnostics + problems
        return config, diagnostics

    return load
