"""Watching: the only sources of config: the standalone file watcher and the Kubernetes list/watch watcher."""
