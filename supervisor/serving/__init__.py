"""Serving: /metrics, /healthz, /readyz, /status over HTTP, and the status/explain formatting that reads them."""
