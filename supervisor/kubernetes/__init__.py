"""Kubernetes mode: the raw-JSON API client, the controller's status writer, Events, the Lease, the speaker's side.

The watcher itself lives in `supervisor.watching.k8s_watcher`; the worker
process entry points in `supervisor.kubernetes.worker`.
"""
