"""labelSelector / fieldSelector query strings and the three PATCH flavours.

Enough of the API server's grammar for clients and kubectl-style queries:
`a=b,c!=d,e in (x,y),f notin (z),g,!h` for labels; `path=value` / `path!=value`
for fields over any dotted path (`spec.type`, `metadata.name`,
`status.phase`, `spec.nodeName`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Predicate = Callable[[Obj], bool]

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text):
        if m := _SET_RE.match(term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif term.startswith("!"):
            absent = term[1:].strip()
            checks.append(lambda lb, k=absent: k not in lb)
        else:
            checks.append(lambda lb, k=term: k in lb)

    def predicate(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return predicate


def field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    checks: list[Predicate] = []
    for term in _split_terms(text):
        if "!=" in term:
            path, value = (s.strip() for s in term.split("!=", 1))
            checks.append(lambda o, p=path, v=value: field_value(o, p) != v)
        else:
            path, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            checks.append(lambda o, p=path, v=value: field_value(o, p) == v)
    return lambda obj: all(check(obj) for check in checks)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge is treated the same here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class PatchError(ValueError):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    for part in parts[:-1]:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def json_patch(doc: Obj, operations: list[Obj]) -> Obj:
    """RFC 6902: add, remove, replace, test, move, copy."""
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, parts = op.get("op"), _pointer(op.get("path", ""))
        try:
            if kind == "test":
                current: Any = doc
                for part in parts:
                    current = current[int(part)] if isinstance(current, list) else current[part]
                if current != op.get("value"):
                    raise PatchError(f"test failed at {op.get('path')}")
                continue
            if kind in ("move", "copy"):
                src = _pointer(op["from"])
                holder = _parent(doc, src)
                value = holder[int(src[-1])] if isinstance(holder, list) else holder[src[-1]]
                if kind == "move":
                    json_patch_remove(holder, src[-1])
                op = {"value": copy.deepcopy(value)}
                kind = "add"
            parent = _parent(doc, parts)
            key = parts[-1]
            if kind == "remove":
                json_patch_remove(parent, key)
            elif kind in ("add", "replace"):
                if isinstance(parent, list):
                    index = len(parent) if key == "-" else int(key)
                    if kind == "add":
                        parent.insert(index, op["value"])
                    else:
                        parent[index] = op["value"]
                else:
                    if kind == "replace" and key not in parent:
                        raise PatchError(f"replace: no value at {op.get('path')}")
                    parent[key] = op["value"]
            else:
                raise PatchError(f"unknown op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise PatchError(f"{kind} {op.get('path')}: {exc}") from exc
    return doc


def json_patch_remove(parent: Any, key: str) -> None:
    if isinstance(parent, list):
        del parent[int(key)]
    else:
        del parent[key]
