"""Parse Kubernetes label selectors (matchLabels + matchExpressions).

MetalLB's webhooks reject a selector Kubernetes itself would reject: an
unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with
values. This module does the same, reporting each problem at the line of the
offending field, and keeps the valid parts so later checks still run.

MetalLB also refuses the whole configuration over a repeated selector in a
list, a repeated match expression, or a repeated value in one ("duplicate
definition of ..."). The repetition changes nothing, so here it is a warning
that says MetalLB would refuse it, as for repeated namespaces and pool names
(docs/migrating-from-metallb.md).
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
    requirements: list[SelectorRequirement] = []
    for expression in fields.get_maps("matchExpressions"):
        requirement = _parse_requirement(expression)
        if requirement is None:
            continue
        same = next((i for i, r in enumerate(requirements) if _same_requirement(r, requirement)), None)
        if same is not None:
            _warn_repeated(expression, expression.line, f"{expression.path}: the same match expression as "
                           f"{fields.path_of('matchExpressions')}[{same}]", "match expressions")
        requirements.append(requirement)
    if any(d.is_error for d in fields.ctx.diagnostics[before:]):
        return None
    return LabelSelector(match_labels=labels_of(match_labels), match_expressions=tuple(requirements))


def _same_requirement(a: SelectorRequirement, b: SelectorRequirement) -> bool:
    return (a.key, a.operator, sorted(a.values)) == (b.key, b.operator, sorted(b.values))


def parse_selectors(fields: Fields, key: str) -> tuple[LabelSelector, ...]:
    """A list of selectors under `key` (nodeSelectors, ipAddressPoolSelectors, ...)."""
    found: list[LabelSelector] = []
    seen: dict[tuple[object, ...], str] = {}
    for item in fields.get_maps(key):
        selector = parse_selector(item)
        if selector is None:
            continue
        canonical = _canonical(selector)
        if canonical in seen:
            _warn_repeated(item, item.line, f"{item.path}: the same selector as {seen[canonical]}", key)
        else:
            seen[canonical] = item.path
        found.append(selector)
    return tuple(found)


def _canonical(selector: LabelSelector) -> tuple[object, ...]:
    """What MetalLB compares (the selector's text, match expression values sorted)."""
    return (selector.match_labels,
            tuple((r.key, r.operator.value, tuple(sorted(r.values))) for r in selector.match_expressions))


def _warn_repeated(fields: Fields, line: int, what: str, definition: str) -> None:
    fields.ctx.warning(line, f"{what}; metalloid ignores the repetition, but MetalLB refuses the whole "
                             f"configuration over it (duplicate definition of {definition}); remove it")


def _parse_requirement(fields: Fields) -> SelectorRequirement | None:
    fields.warn_unknown(_REQUIREMENT_FIELDS)
    key = fields.get_str("key")
    operator_text = fields.get_str("operator")
    listed = fields.get_strs("values")
    values = tuple(v for v, _, _ in listed)
    for number, (value, path, line) in enumerate(listed):
        if value in values[:number]:
            _warn_repeated(fields, line, f"{path}: {value!r} is listed twice", "match expression value in label "
                                                                                 "selector")
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
