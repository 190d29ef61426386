"""ConfigurationState: each component says whether the configuration it read is valid, as MetalLB does.

One object per component in the metalloid namespace: `controller` (label
`metallb.io/component-type: controller`) and `speaker-NODE`
(`component-type: speaker`, `metallb.io/node-name: NODE`). Its status holds
MetalLB's conditions, `configReconcilerValid` for every component and
`poolReconcilerValid` for the controller (status False with reason
`ConfigurationError` and the errors as message when the config was rejected;
True with reason `Reconciled` otherwise), and MetalLB's summary: `result`
Valid / Invalid / Unknown and `errorSummary` (the False conditions' messages,
one per line).

metalloid adds one condition, `configWarnings` (True, reason
`ConfigurationWarning`), only when the loaded config has warnings: chiefly
the MetalLB fields metalloid keeps but does not act on. It is a True
condition with another reason, so `result` stays Valid, as MetalLB computes it.

`configuration_state` is pure; `ConfigStateWriter` writes only when the
status changed (a condition's lastTransitionTime moves only when its status
does).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from supervisor.config.diagnostics import Diagnostic
from supervisor.config.isolation import OBJECT_KINDS, config_errors
from supervisor.kubernetes import kinds
from supervisor.kubernetes.client import MERGE_PATCH, ApiError, RawClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CONFIG_CONDITION = "configReconcilerValid"
POOL_CONDITION = "poolReconcilerValid"
WARNINGS_CONDITION = "configWarnings"
REASON_OK = "Reconciled"
REASON_ERROR = "ConfigurationError"
REASON_WARNING = "ConfigurationWarning"
# A condition message is at most 32768 characters (metav1.Condition).
MESSAGE_LIMIT = 32768


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigState:
    name: str
    labels: tuple[tuple[str, str], ...]
    result: str
    error_summary: str
    conditions: tuple[Condition, ...]


def identity(component: str, node: str) -> tuple[str, dict[str, str]]:
    """MetalLB's name and labels for `component` ("controller" or "speaker")."""
    if component == "speaker":
        return f"speaker-{node}", {"metallb.io/component-type": "speaker", "metallb.io/node-name": node}
    return "controller", {"metallb.io/component-type": "controller"}


def _line(diag: Diagnostic) -> str:
    return f"{diag.kind}/{diag.name}: {diag.message}"


def _joined(lines: Iterable[str]) -> str:
    return "\n".join(lines)[:MESSAGE_LIMIT]


def configuration_state(
    component: str, node: str, *, errors: Iterable[Diagnostic] | None, warnings: Iterable[Diagnostic] = ()
) -> ConfigState:
    """The ConfigurationState for `component`. `errors` None: nothing read yet (result Unknown)."""
    name, labels = identity(component, node)
    reconcilers = [CONFIG_CONDITION] + ([POOL_CONDITION] if component == "controller" else [])
    conditions: list[Condition] = []
    if errors is not None:
        # A Service's own error fails that Service alone (an Event on it), not the configuration.
        found = config_errors(errors)
        for reconciler in reconcilers:
            # The controller's pool reconciler owns the IPAddressPool errors; the
            # config reconciler the rest (a speaker's has them all).
            mine = [d for d in found if (d.kind == "IPAddressPool") == (reconciler == POOL_CONDITION)
                    or len(reconcilers) == 1]  # fmt: skip
            if mine:
                conditions.append(Condition(type=reconciler, status="False", reason=REASON_ERROR,
                                            message=_joined(_line(d) for d in mine)))  # fmt: skip
            else:
                conditions.append(Condition(type=reconciler, status="True", reason=REASON_OK))
        notes = [d for d in warnings if not d.is_error and d.kind not in OBJECT_KINDS]
        if notes:
            conditions.append(Condition(type=WARNINGS_CONDITION, status="True", reason=REASON_WARNING,
                                        message=_joined(_line(d) for d in notes)))  # fmt: skip
    failed = [c for c in conditions if c.status == "False" and c.reason == REASON_ERROR]
    result = "Unknown" if not conditions else ("Invalid" if failed else "Valid")
    return ConfigState(name=name, labels=tuple(sorted(labels.items())), result=result,
                       error_summary=_joined(c.message for c in failed), conditions=tuple(conditions))  # fmt: skip


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigStateWriter:
    def __init__(self, client: RawClient, *, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._applied: ConfigState | None = None
        self._since: dict[tuple[str, str], str] = {}  # (type, status) → lastTransitionTime
        self.writes = 0

    def update(self, state: ConfigState) -> bool:
        """Write `state` unless it is what was written last; True when the API holds it."""
        if state == self._applied:
            return True
        path = kinds.CONFIGURATION_STATE.path(self.namespace, state.name)
        try:
            current = self.client.request("GET", path)
        except ApiError as exc:
            if exc.code != 404:
                log.warning("configstate.failed action=get name=%s error=%s", state.name, exc)
                return False
            created = self._create(state)
            if created is None:
                return False
            current = created
        self._remember(current)
        status = self._status(state)
        try:
            self.client.request("PATCH", kinds.CONFIGURATION_STATE.path(self.namespace, state.name, "status"),
                                body={"status": status}, content_type=MERGE_PATCH)  # fmt: skip
        except ApiError as exc:
            log.warning("configstate.failed action=patch name=%s error=%s", state.name, exc)
            return False
        self.writes += 1
        self._applied = state
        log.info("configstate.written name=%s result=%s", state.name, state.result)
        return True

    def _create(self, state: ConfigState) -> Obj | None:
        body = {
            "apiVersion": kinds.CONFIGURATION_STATE.api_version,
            "kind": "ConfigurationState",
            "metadata": {"name": state.name, "namespace": self.namespace, "labels": dict(state.labels)},
        }
        try:
            return self.client.request("POST", kinds.CONFIGURATION_STATE.path(self.namespace), body=body)
        except ApiError as exc:
            log.warning("configstate.failed action=create name=%s error=%s", state.name, exc)
            return None

    def _remember(self, current: Mapping[str, Any]) -> None:
        """Keep the transition times of conditions already there (a restart must not move them)."""
        for c in (current.get("status") or {}).get("conditions") or []:
            if isinstance(c, dict) and c.get("lastTransitionTime"):
                self._since.setdefault((str(c.get("type")), str(c.get("status"))), str(c["lastTransitionTime"]))

    def _status(self, state: ConfigState) -> Obj:
        now = _now()
        conditions = []
        for c in state.conditions:
            since = self._since.get((c.type, c.status)) or now
            conditions.append({"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                               "lastTransitionTime": since})  # fmt: skip
        self._since = {(c["type"], c["status"]): c["lastTransitionTime"] for c in conditions}
        return {"result": state.result, "errorSummary": state.error_summary or None, "conditions": conditions or None}
