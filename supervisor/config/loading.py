"""Read multi-document YAML files, remembering the line of every mapping and key.

PyYAML's SafeLoader forgets where things were written; validation wants to say
`homelab.yaml:14: IPAddressPool/first-pool: ...`. So this loader builds
`LocatedDict`/`LocatedList` (plain dict/list subclasses that also know their
own line and the line of each key or item), and turns YAML syntax errors and
duplicate keys into `Diagnostic`s instead of exceptions.

Booleans follow YAML 1.2 (`true`/`false` only): under YAML 1.1 `autoAssign: no`
or a label value `on` silently become booleans, which bites. Numbers have no
base-60 form either (YAML 1.1 reads the BGP community `1234:1` as 74041);
Kubernetes' YAML reader agrees on both.

`load_config_files` is the one entry point the commands use: load, parse,
validate, run the plugins' validators, confine Service errors to their Service. Parsing lives in `parsing`, semantic
checks in `validation`. The only I/O here is reading the files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from supervisor.config.diagnostics import Diagnostic, error
from supervisor.config.model import Config, Source


class LocatedDict(dict[Any, Any]):
    """A dict that knows its 1-based start line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        lines = getattr(self, "key_lines", None) or {}
        return int(lines.get(key, self.line))


class LocatedList(list[Any]):
    """A list that knows its 1-based start line and the line of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", None) or []
        return lines[index] if 0 <= index < len(lines) else self.line


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One YAML document of a file: `body` is usually a LocatedDict, but may be anything."""

    file: str
    line: int
    index: int
    body: Any


_BOOL_TAG = "tag:yaml.org,2002:bool"


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building Located containers, with YAML 1.2 booleans."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[tuple[int, Any]] = []


# Copy the resolver table before editing it, so the global SafeLoader is untouched.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    data = LocatedDict()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
            ) from None
        if key in data:
            loader.duplicate_keys.append((key_node.start_mark.line + 1, key))
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = key_node.start_mark.line + 1
    return data


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    data = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    return data


# YAML 1.1's int and float patterns without their base-60 alternatives.
_NUMBER_PATTERNS = {
    "tag:yaml.org,2002:int": (re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"), list("-+0123456789")),
    "tag:yaml.org,2002:float": (re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789.")),
}
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMBER_PATTERNS]
    for first, resolvers in _LineLoader.yaml_implicit_resolvers.items()
}
for _tag, (_pattern, _first) in _NUMBER_PATTERNS.items():
    _LineLoader.add_implicit_resolver(_tag, _pattern, _first)

_LineLoader.add_constructor(_BOOL_TAG, _construct_bool)
_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_documents(path: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document of the YAML file at `path`, and its syntax problems.

    Raises OSError when the file cannot be read (the caller decides how loud
    that is); everything about its content comes back as diagnostics. After a
    syntax error the documents read so far are still returned.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [error(Source(file=path, line=line), "YAML", "encoding",
                          f"byte {raw[exc.start]:#04x} is not UTF-8; save the file as UTF-8")]
    return load_text(text, file=path)


def load_text(text: str, *, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Like `load_documents`, for text already in memory (`file` names it in messages)."""
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    loader = _LineLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            body = loader.construct_document(node)
            documents.append(Document(file=file, line=node.start_mark.line + 1, index=len(documents), body=body))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        column = f" (column {mark.column + 1})" if mark is not None else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        diagnostics.append(error(Source(file=file, line=line), "YAML", "syntax",
                                 f"{what}{column}; check the indentation and quoting around this line"))
    except yaml.YAMLError as exc:
        diagnostics.append(error(Source(file=file, line=1), "YAML", "syntax", f"{exc}"))
    finally:
        loader.dispose()
    for line, key in loader.duplicate_keys:
        diagnostics.append(error(Source(file=file, line=line), "YAML", "duplicate-key",
                                 f"key {key!r} appears twice in the same mapping; the first value would be "
                                 "silently lost, keep only one"))
    return documents, diagnostics


Validator = Callable[[Config], list[Diagnostic]]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadResult:
    """What the files say: the valid objects, every diagnostic, and whether the config is usable.

    `config` always holds what parsed (each erroneous Service carrying its
    `problem`); `rejected` is True when a config-level error makes it invalid
    as a whole, in which case a running node keeps its last good config.
    """

    config: Config
    diagnostics: tuple[Diagnostic, ...]
    rejected: bool


def load_config(paths: Sequence[str], *, validators: Sequence[Validator] = ()) -> LoadResult:
    """Load, parse and validate the files as one config; run extra validators.

    Diagnostics come in file order, errors and warnings. Errors about one
    Service do not reject the config: that Service carries its `problem` and
    stays pending, the rest is served (`supervisor.config.isolation`). Raises
    OSError when a file cannot be read. The validators (plugins' hooks) run
    only on a config without config-level errors.
    """
    from supervisor.config.isolation import config_errors, isolate
    from supervisor.config.parsing import parse_documents
    from supervisor.config.validation import validate

    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    for path in paths:
        docs, problems = load_documents(path)
        documents.extend(docs)
        diagnostics.extend(problems)
    config, problems = parse_documents(documents)
    diagnostics.extend(problems)
    # Config objects that failed to parse are missing from `config`, so
    # cross-object warnings ("no pool can serve this Service") would mostly
    # echo those errors; they come back once the errors are fixed.
    parsed_cleanly = not config_errors(diagnostics)
    diagnostics.extend(d for d in validate(config) if d.is_error or parsed_cleanly)
    if not config_errors(diagnostics):
        for validator in validators:
            diagnostics.extend(validator(config))
    return LoadResult(config=isolate(config, diagnostics), diagnostics=tuple(diagnostics),
                      rejected=bool(config_errors(diagnostics)))


def load_config_files(
    paths: Sequence[str], *, validators: Sequence[Validator] = ()
) -> tuple[Config | None, list[Diagnostic]]:
    """`load_config` as (Config, diagnostics), the Config None when the config is rejected."""
    loaded = load_config(paths, validators=validators)
    return (None if loaded.rejected else loaded.config), list(loaded.diagnostics)
