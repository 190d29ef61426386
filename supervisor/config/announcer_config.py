"""The `AnnouncerConfig` kind: a plugin's own settings in the config, and their diagnostics.

    apiVersion: metalloid.io/v1alpha1
    kind: AnnouncerConfig
    metadata: {name: example}        # the announcer's protocol name
    spec:
      enabled: true                  # default true; false turns a default (layer2, bgp) off
      hangTimeoutSeconds: 10         # default: the node's --hung-timeout (3 s)
      settings: {...}                # free-form, the plugin's own; validated by its hook

One object per plugin, in the same files (or, in Kubernetes, the same
namespace) as the MetalLB resources. metalloid parses only `enabled` and
`hangTimeoutSeconds`; `settings` is kept as written, with the line of every
nested field, so a plugin's `metalloid_validate_config` hook can point at one
with `setting_error(announcer_config, "url", "...")`:

    examples/node.yaml:12: AnnouncerConfig/example: spec.settings.url: ...

Pure: parsing and diagnostics only.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping
from typing import Any

from supervisor.config.diagnostics import Diagnostic, error, warning
from supervisor.config.fields import Fields, line_in
from supervisor.config.model import AnnouncerConfig, Config, Source, field_source

KIND = "AnnouncerConfig"
SETTINGS_PATH = "spec.settings"
_SPEC_FIELDS = frozenset({"enabled", "hangTimeoutSeconds", "settings"})


def parse_announcer_config(top: Fields, name: str, namespace: str) -> AnnouncerConfig:
    spec = top.get_map("spec") or Fields(top.ctx, {}, "spec", top.line)
    spec.warn_unknown(_SPEC_FIELDS)
    hang = spec.get_number("hangTimeoutSeconds", None, low=0.5)
    settings: Any = {}
    raw = spec.raw("settings")
    if raw is not None:
        if isinstance(raw, Mapping):
            line = spec.line_of("settings")
            settings = _plain(raw)
            _record_lines(raw, SETTINGS_PATH, line, top.ctx.field_lines)
        else:
            top.ctx.error(spec.line_of("settings"), f"spec.settings: expected a mapping of the plugin's own "
                                                    f"settings, got {type(raw).__name__}; write e.g. settings: "
                                                    "{url: http://...}")
    return AnnouncerConfig(
        name=name,
        namespace=namespace,
        enabled=spec.get_bool("enabled", True),
        hang_timeout_seconds=hang,
        settings_json=json.dumps(settings, sort_keys=True, separators=(",", ":")),
        source=top.ctx.source(),
        field_lines=tuple(top.ctx.field_lines.items()),
    )


def _plain(value: Any) -> Any:
    """YAML/JSON data as plain JSON types (a YAML timestamp becomes its ISO text)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _record_lines(value: Any, path: str, line: int, lines: dict[str, int]) -> None:
    lines.setdefault(path, line)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _record_lines(item, f"{path}.{key}", line_in(value, key, line), lines)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _record_lines(item, f"{path}[{index}]", line_in(value, index, line), lines)


def setting_source(announcer: AnnouncerConfig, path: str = "") -> Source:
    """Where `spec.settings.<path>` was written (`path` like "url" or "routes[0].via"); the object's line if unknown."""
    found = field_source(announcer.source, announcer.field_lines, _field(path))
    if found is announcer.source and path:
        # A missing field: point at the settings mapping, where it belongs.
        return field_source(announcer.source, announcer.field_lines, SETTINGS_PATH)
    return found


def _field(path: str) -> str:
    if not path:
        return SETTINGS_PATH
    return f"{SETTINGS_PATH}{path}" if path.startswith("[") else f"{SETTINGS_PATH}.{path}"


def setting_error(announcer: AnnouncerConfig, path: str, message: str) -> Diagnostic:
    """`FILE:LINE: AnnouncerConfig/<name>: spec.settings.<path>: <message>`, an error.

    For a plugin's `metalloid_validate_config`: `path` is relative to
    `spec.settings` ("url", "routes[0].via", "" for the whole mapping). Say
    what is wrong with the value and how to fix it in `message`.
    """
    return error(setting_source(announcer, path), KIND, announcer.name, f"{_field(path)}: {message}")


def setting_warning(announcer: AnnouncerConfig, path: str, message: str) -> Diagnostic:
    """Like `setting_error`, as a warning (the config still loads)."""
    return warning(setting_source(announcer, path), KIND, announcer.name, f"{_field(path)}: {message}")


def validate_announcer_configs(config: Config) -> Iterable[Diagnostic]:
    """Two AnnouncerConfigs for one protocol: the second would silently replace the first."""
    first: dict[str, AnnouncerConfig] = {}
    for announcer in config.announcers:
        seen = first.setdefault(announcer.name, announcer)
        if seen is not announcer:
            yield error(announcer.source, KIND, announcer.name,
                        f"a second AnnouncerConfig for protocol {announcer.name!r} (the first is at {seen.source}); "
                        "one object per announcer, merge them")
