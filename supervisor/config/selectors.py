"""Parse Kubernetes label selectors (matchLabels + matchExpressions).

MetalLB's webhooks reject a selector Kubernetes itself would reject: an
unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with
values. This module does the same, reporting each problem at the line of the
offending field, and keeps the valid parts so later checks still run.
"""

from __future__ import annotations

from supervisor.config.fields import Fields, describe
from supervisor.config.model import LabelSelector, SelectorOperator, SelectorRequirement, labels_of

_OPERATORS = {op.value: op for op in SelectorOperator}
_SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
_REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})


def parse_selector(fields: Fields) -> LabelSelector | None:
    """One selector; None when it has an error (the error is recorded)."""
    before = len(fields.ctx.diagnostics)
    fields.warn_unknown(_SELECTOR_FIELDS)
    match_labels = fields.get_str_map("matchLabels")
    requirements = tuple(r for r in (_parse_requirement(e) for e in fields.get_maps("matchExpressions")) if r)
    if any(d.is_error for d in fields.ctx.diagnostics[before:]):
        return None
    return LabelSelector(match_labels=labels_of(match_labels), match_expressions=requirements)


def parse_selectors(fields: Fields, key: str) -> tuple[LabelSelector, ...]:
    """A list of selectors under `key` (nodeSelectors, ipAddressPoolSelectors, ...)."""
    return tuple(s for s in (parse_selector(item) for item in fields.get_maps(key)) if s is not None)


def _parse_requirement(fields: Fields) -> SelectorRequirement | None:
    fields.warn_unknown(_REQUIREMENT_FIELDS)
    key = fields.get_str("key")
    operator_text = fields.get_str("operator")
    values = tuple(v for v, _, _ in fields.get_strs("values"))
    if key is None or not key:
        fields.ctx.error(fields.line, f"{fields.path}: a match expression needs a non-empty key")
        return None
    if operator_text is None:
        fields.ctx.error(fields.line, f"{fields.path}: match expression on {key!r} needs an operator "
                                      f"({', '.join(_OPERATORS)})")
        return None
    operator = _OPERATORS.get(operator_text)
    if operator is None:
        fields.ctx.error(fields.line_of("operator"),
                         f"{fields.path_of('operator')}: unknown operator {describe(operator_text)}; "
                         f"use one of {', '.join(_OPERATORS)} (case matters)")
        return None
    if operator in (SelectorOperator.IN, SelectorOperator.NOT_IN) and not values:
        fields.ctx.error(fields.line_of("operator"),
                         f"{fields.path}: operator {operator.value} on {key!r} needs at least one value in "
                         f"values; use Exists to match any value")
        return None
    if operator in (SelectorOperator.EXISTS, SelectorOperator.DOES_NOT_EXIST) and values:
        fields.ctx.error(fields.line_of("values"),
                         f"{fields.path}: operator {operator.value} on {key!r} takes no values; "
                         f"remove values or use In")
        return None
    return SelectorRequirement(key=key, operator=operator, values=values)
