"""Kubernetes mode: the raw-JSON API client, the controller's status writer, Events, the Lease, the speaker's side.

The list/watch watcher is `supervisor.kubernetes.watcher`; the worker
process entry points are in `supervisor.kubernetes.worker`.
"""
