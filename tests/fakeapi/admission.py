"""Validating admission webhooks, as the fake API server honours them: every one is unreachable.

The fake runs no Services, so a webhook it would call can never answer. That
is exactly the state MetalLB leaves behind when its controller (which serves
`metallb-webhook-service`) is scaled to 0 while its
ValidatingWebhookConfiguration stays registered: with `failurePolicy: Fail`
(the default) every matching create/update is rejected with the API server's
error, with `Ignore` it goes through. Subresources (`/status`) are not
matched by a rule naming only the resource, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.fakeapi.resources import Target
from tests.fakeapi.store import ApiError

OPERATIONS = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "UPDATE", "DELETE": "DELETE"}


def _matches(rule: dict[str, Any], t: Target, operation: str) -> bool:
    resource = t.resource.plural + (f"/{t.subresource}" if t.subresource else "")

    def has(key: str, value: str) -> bool:
        listed = rule.get(key) or []
        return "*" in listed or value in listed

    return (has("apiGroups", t.resource.group) and has("apiVersions", t.version) and has("resources", resource)
            and has("operations", operation))  # fmt: skip


def admit(configurations: Iterable[dict[str, Any]], method: str, t: Target) -> None:
    """Raise the API server's error when a matching webhook with failurePolicy Fail cannot be called."""
    operation = OPERATIONS.get(method)
    if operation is None:
        return
    for configuration in configurations:
        for hook in configuration.get("webhooks") or []:
            if not any(_matches(rule, t, operation) for rule in hook.get("rules") or []):
                continue
            if (hook.get("failurePolicy") or "Fail") != "Fail":
                continue
            service = (hook.get("clientConfig") or {}).get("service") or {}
            url = (f"https://{service.get('name')}.{service.get('namespace')}.svc:{service.get('port', 443)}"
                   f"{service.get('path', '')}?timeout={hook.get('timeoutSeconds', 10)}s")  # fmt: skip
            raise ApiError(500, "InternalError",
                           f'Internal error occurred: failed calling webhook "{hook.get("name")}": failed to call '
                           f'webhook: Post "{url}": no endpoints available for service "{service.get("name")}"')
