"""The public testing kit's fixtures (`announcer_driver`, `plugin_state_dir`).

In a plugin's own repository, put `pytest_plugins = ["supervisor.plugin_fixtures"]`
in the top-level conftest.py instead; this one is nested inside metalloid's.
"""

from supervisor.plugin_fixtures import announcer_driver, plugin_state_dir

__all__ = ["announcer_driver", "plugin_state_dir"]
