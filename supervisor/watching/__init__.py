"""Watching: the standalone file watcher (the Kubernetes watcher is `supervisor.kubernetes.watcher`)."""
