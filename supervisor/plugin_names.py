"""Where metalloid finds announcer plugins: the entry-point group and the variable naming extra ones.

Names only, with no import: `metalloid run`'s start-up check reads both to
judge `--announcers`, and importing them from `hookspecs` or
`plugins_loader` brought pluggy and the whole plugin API into that check
(~25-30 ms of CPU before the node could start its workers, BENCHMARKS.md,
issue 16's fourth session). Those two modules re-export them.
"""

from __future__ import annotations

from typing import Final

# The group a plugin package publishes its module under (docs/plugins.md).
ENTRY_POINT_GROUP: Final = "metalloid.announcers"
# Comma-separated "module:attribute" plugins loaded beside the installed ones (the tests' recording plugin).
EXTRA_PLUGINS_ENV: Final = "METALLOID_EXTRA_PLUGINS"
