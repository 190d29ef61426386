"""The part of a config each role reads: what the supervisor sends each worker (issue 14).

Every process that unpickles a config holds its own copy (~3 MiB for 1,000
Services, BENCHMARKS.md) and pays for the pickling on every change, so a
worker gets only the fields its role reads:

- everyone: no line tracking (`field_lines`). Only validation, where the
  config is loaded, points diagnostics at lines, so the config model leaves
  it out of every pickle (`NOT_PICKLED` in `model.FieldLines`).
- `for_allocator`, the standalone allocator: the pools, the Services and the
  Namespaces (pool selection by namespace labels).
- `for_membership`, membership: the Nodes and the Settings (peers, addresses,
  key, port).
- `for_announcers`, the announcer hosts (`AnnouncerView.config`): all but the
  Namespaces and the inert fields; the election reads Services,
  EndpointSlices, Nodes, pools and advertisements, BGP its peers, profiles and
  communities, a plugin its AnnouncerConfig.

The Kubernetes allocator roles get no config at all: the watcher attaches the
allocation (`ConfigLoaded.allocation`) and they pass it on. A field a role
starts reading must be kept here; `tests/test_config_parts.py` checks each
role's answer on the part against the whole config. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import replace

from supervisor.config.model import Config


def for_allocator(config: Config) -> Config:
    """What `allocate` reads: the pools, the Services and the Namespaces' labels."""
    return Config(pools=config.pools, services=config.services, namespaces=config.namespaces)


def for_membership(config: Config) -> Config:
    """What the membership worker reads: the Nodes (peers, addresses, readiness) and the Settings."""
    return Config(nodes=config.nodes, settings=config.settings)


def for_announcers(config: Config) -> Config:
    """What announcers read: everything but the Namespaces and the inert fields (a config-check matter)."""
    if not config.namespaces and not config.inert_fields:
        return config
    return replace(config, namespaces=(), inert_fields=())
