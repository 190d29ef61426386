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

Nothing in a file raises: control characters, bad encodings, unknown or
abused tags (`!!timestamp 'x'`, `!!python/object`), absurd nesting and alias
bombs all come back as `FILE:LINE` diagnostics, so `metalloid check` (the
systemd unit's ExecStartPre) and the config watcher report them instead of
dying. Only the core YAML types are built (string, integer, float, boolean,
null, mapping, sequence): an unquoted date stays a string, as in YAML 1.2.
Files must be regular files of at most `MAX_CONFIG_BYTES` (see
docs/configuring.md), so a FIFO, a device or a 50 MB mistake is refused at
once instead of hanging or filling memory.

`load_config_files` is the one entry point the commands use: load, parse,
validate, run the plugins' validators, confine Service errors to their Service. Parsing lives in `parsing`, semantic
checks in `validation`. The only I/O here is reading the files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from supervisor.config.diagnostics import Diagnostic, error
from supervisor.config.documents import Document, LocatedDict, LocatedList
from supervisor.config.isolation import config_errors, isolate
from supervisor.config.model import Config, Source
from supervisor.config.parsing import parse_documents
from supervisor.config.validation import validate
from supervisor.files import RefusedFile, read_regular_file

log = logging.getLogger(__name__)

# Kubernetes caps a ConfigMap at 1 MiB, and so does metalloid a config file:
# ~8,000 Services, parsed in ~4 s and ~65 MiB on a loaded 2-core node (4 MiB
# took 16 s and 212 MiB), so a reload never stalls the watcher for a minute.
MAX_CONFIG_BYTES = 1024 * 1024
# No metalloid object nests deeper than ~10 levels; 64 leaves room for
# plugins' fields and keeps the recursive composer far from Python's limit.
MAX_NESTING = 64
# Aliases let 1 KiB of YAML stand for a billion nodes ("billion laughs").
# A document may expand to this many nodes whatever its size, and beyond it
# to at most ALIAS_RATIO times the nodes actually written.
MAX_EXPANDED_NODES = 200_000
ALIAS_RATIO = 10


_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map",
                                                                    "seq", "merge"))
# Implicit resolvers outside YAML 1.2's core schema: an unquoted 2024-01-01
# must stay a string, and a lone `=` (YAML 1.1 "value") must not be special.
_DROPPED_RESOLVERS = frozenset({_BOOL_TAG, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"})


class _LineConstruction:
    """What both loaders construct with: Located containers, a line on every constructor error."""

    duplicate_keys: list[tuple[int, Any]]

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A constructor's own ValueError or OverflowError (`!!float 'x'`, an
        # int of 5,000 digits) carries no line: give it the node's.
        try:
            return super().construct_object(node, deep=deep)  # type: ignore[misc]
        except (yaml.YAMLError, RecursionError, MemoryError):
            raise
        except Exception as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {_short_tag(node.tag)} value {_excerpt(node.value)} ({exc})",
                node.start_mark) from None


class _LineLoader(_LineConstruction, yaml.SafeLoader):
    """SafeLoader building Located containers, with YAML 1.2 booleans and core types only.

    The pure-Python parser: its errors are the diagnostics metalloid reports.
    """

    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self.duplicate_keys = []


# libyaml's parser, when PyYAML was built with it (its wheels are); None otherwise.
_CPARSER: Any = getattr(getattr(yaml, "cyaml", None), "CParser", None)
if _CPARSER is not None:

    class _FastLineLoader(_LineConstruction, _CPARSER,  # type: ignore[misc]
                           yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """The same loader on libyaml's parser: ~8x faster (0.04 vs 0.33 s for 1,000 Services, measured).

        Used only for text the pure-Python reader accepted, and only when it reads
        the whole text without a single problem; anything else is read again by
        `_LineLoader`, whose messages are the diagnostics (`load_text`).
        """

        def __init__(self, stream: str) -> None:
            _CPARSER.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.duplicate_keys = []
            # Without an anchor (`&`) in the text there can be no alias, so a
            # document expands to exactly what is written and its shape is its
            # depth, counted while constructing (`construct_object`) instead of
            # by `_shape_problem`'s walk, which was half the read of 1,000 Services.
            # (A merge key `<<` lifts a mapping one level before construction:
            # the walk, which counts it, decides such texts.)
            self.counts_depth = "&" not in stream and "<<" not in stream
            self._depth = 0

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            if not self.counts_depth:
                return super().construct_object(node, deep=deep)
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    raise _TooDeep(f"nested more than {MAX_NESTING} levels deep")  # the pure-Python reading says where
                return super().construct_object(node, deep=deep)
            finally:
                self._depth -= 1

        def construct_document(self, node: yaml.Node) -> Any:
            if not self.counts_depth:
                return super().construct_document(node)
            data = self._build(node, 1)
            # What the generic path leaves behind (`BaseConstructor.construct_document`).
            self.constructed_objects, self.recursive_objects, self.deep_construct = {}, {}, False
            return data

        def _build(self, node: yaml.Node, depth: int) -> Any:
            """`construct_object`'s answer for a text without anchors, strings, mappings and lists built directly.

            The generic path runs three layers of Python per node (the line
            wrapper, the depth count, PyYAML's bookkeeping for aliases, which a
            text without `&` has none of): 1,000 Services are ~20,000 nodes, and
            this reads them in ~60 % of the time (tests/test_config_fast_path.py:
            the same documents, types and lines). Anything else (numbers,
            booleans, null, tags, keys that are not plain strings) goes the
            generic way, at the same depth.
            """
            if depth > MAX_NESTING:
                raise _TooDeep(f"nested more than {MAX_NESTING} levels deep")
            kind, tag = node.__class__, node.tag
            if kind is yaml.ScalarNode and tag == _STR_TAG:
                return node.value
            if kind is yaml.MappingNode and tag == _MAP_TAG and all(
                    key.__class__ is yaml.ScalarNode and key.tag == _STR_TAG for key, _ in node.value):
                data = LocatedDict()
                data.line = node.start_mark.line + 1
                data.key_lines = lines = {}
                for key_node, value_node in node.value:
                    key = key_node.value
                    if key in data:
                        self.duplicate_keys.append((key_node.start_mark.line + 1, key))
                    data[key] = self._build(value_node, depth + 1)
                    lines[key] = key_node.start_mark.line + 1
                return data
            if kind is yaml.SequenceNode and tag == _SEQ_TAG:
                items = LocatedList(self._build(child, depth + 1) for child in node.value)
                items.line = node.start_mark.line + 1
                items.item_lines = [child.start_mark.line + 1 for child in node.value]
                return items
            saved, self._depth = self._depth, depth - 1
            try:
                return self.construct_object(node, deep=True)
            finally:
                self._depth = saved

    class _TooDeep(yaml.YAMLError):
        """Deeper than MAX_NESTING: a diagnostic, so `load_text` reads the text again with the pure-Python reader."""


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _excerpt(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else "this node"
    return text if len(text) <= 40 else text[:37] + "..."


def _unsupported_tag(loader: _LineLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag {_short_tag(node.tag)} is not supported in a metalloid config (only strings, numbers, "
                    "booleans, null, mappings and lists are); remove the tag, and quote the value if it is text",
        node.start_mark)


# Copy the resolver table before editing it, so the global SafeLoader is untouched.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_RESOLVERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# Only the core constructors: `!!binary`, `!!timestamp`, `!!set`, `!!omap` and
# unknown tags become a diagnostic instead of bytes, dates or sets the
# parser would have to guess about.
_LineLoader.yaml_constructors = {
    tag: constructor for tag, constructor in yaml.SafeLoader.yaml_constructors.items() if tag in _CORE_TAGS
}
_LineLoader.yaml_multi_constructors = {}
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
_LineLoader.add_constructor(None, _unsupported_tag)
if _CPARSER is not None:
    # One resolver and constructor table for both loaders (class attributes, read through `self`).
    _FastLineLoader.yaml_implicit_resolvers = _LineLoader.yaml_implicit_resolvers
    _FastLineLoader.yaml_constructors = _LineLoader.yaml_constructors
    _FastLineLoader.yaml_multi_constructors = _LineLoader.yaml_multi_constructors


def load_documents(path: str) -> tuple[list[Document], list[Diagnostic]]:
    """Every document of the YAML file at `path`, and its syntax problems.

    Raises OSError when the file cannot be opened (the caller decides how
    loud that is); everything about what it is and what it contains (not a
    regular file, too large, not UTF-8, not YAML) comes back as diagnostics.
    After a syntax error the documents read so far are still returned.
    """
    try:
        raw = read_regular_file(path, limit=MAX_CONFIG_BYTES, what="a config file")
    except RefusedFile as exc:
        return [], [error(Source(file=path, line=1), "File", _basename(path), f"refused: {exc.reason}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [], [error(Source(file=path, line=line), "YAML", "encoding",
                          f"byte {raw[exc.start]:#04x} is not UTF-8; save the file as UTF-8")]
    return load_text(text, file=path)


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def load_text(text: str, *, file: str) -> tuple[list[Document], list[Diagnostic]]:
    """Like `load_documents`, for text already in memory (`file` names it in messages)."""
    try:
        loader = _LineLoader(text)
    except yaml.reader.ReaderError as exc:
        # PyYAML checks the whole text for non-printable characters up front.
        return [], [_unprintable(text, exc, file=file)]
    if _CPARSER is not None:
        fast = _FastLineLoader(text)
        try:
            documents, diagnostics = _read(fast, file)
        except Exception:  # whatever libyaml makes of it, the pure-Python reading below decides
            diagnostics = [error(Source(file=file, line=1), "YAML", "fast-path", "failed")]
        if not diagnostics:
            loader.dispose()
            return documents, diagnostics
    return _read(loader, file)


def _read(loader: Any, file: str) -> tuple[list[Document], list[Diagnostic]]:
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            problem = None if getattr(loader, "counts_depth", False) else _shape_problem(node)
            if problem:
                diagnostics.append(error(Source(file=file, line=node.start_mark.line + 1), "YAML", "structure",
                                         problem))
                continue
            body = loader.construct_document(node)
            documents.append(Document(file=file, line=node.start_mark.line + 1, index=len(documents), body=body))
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        diagnostics.append(error(Source(file=file, line=line), "YAML", "value", what))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        column = f" (column {mark.column + 1})" if mark is not None else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        diagnostics.append(error(Source(file=file, line=line), "YAML", "syntax",
                                 f"{what}{column}; check the indentation and quoting around this line"))
    except yaml.YAMLError as exc:
        diagnostics.append(error(Source(file=file, line=1), "YAML", "syntax", f"{exc}"))
    except RecursionError:
        # The composer recurses once per nesting level: thousands of `[` or
        # indented levels end here, before `_shape_problem` can count them.
        line = loader.get_mark().line + 1
        diagnostics.append(error(Source(file=file, line=line), "YAML", "structure",
                                 f"nested more than {MAX_NESTING} levels deep; no metalloid object needs that, "
                                 "check the brackets and indentation"))
    finally:
        loader.dispose()
    for line, key in loader.duplicate_keys:
        diagnostics.append(error(Source(file=file, line=line), "YAML", "duplicate-key",
                                 f"key {key!r} appears twice in the same mapping; the first value would be "
                                 "silently lost, keep only one"))
    return documents, diagnostics


def _unprintable(text: str, exc: yaml.reader.ReaderError, *, file: str) -> Diagnostic:
    position = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    hint = " (an ESC typed by accident?)" if char == "\x1b" else ""
    return error(Source(file=file, line=line), "YAML", "encoding",
                 f"control character {ord(char):#04x} at column {column}{hint} is not allowed in YAML; delete it")


def _shape_problem(root: yaml.Node) -> str | None:
    """Why this composed document is too deep or expands too far, or None.

    Iterative, so it can measure what the recursive constructor could not
    survive. Aliases are followed (that is the point), each node's expanded
    size is memoized, and a node already on the path (a recursive alias) is
    left to the constructor, which reports it with its line.
    """
    written: set[int] = set()
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes.get(id(child), 0) for child in children)
            # The height, not the depth seen first: a chain of aliases nests
            # deeper than any path written in the file.
            heights[key] = 1 + max((heights.get(id(child), 0) for child in children), default=0)
            if heights[key] > MAX_NESTING:
                return (f"nested more than {MAX_NESTING} levels deep (line {node.start_mark.line + 1}); "
                        "no metalloid object needs that, check the brackets, indentation and aliases")
            continue
        if depth > MAX_NESTING:
            return (f"nested more than {MAX_NESTING} levels deep (line {node.start_mark.line + 1}); "
                    "no metalloid object needs that, check the brackets and indentation")
        if key in sizes or key in on_path:
            continue
        written.add(key)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    expanded = sizes.get(id(root), 1)
    if expanded > max(MAX_EXPANDED_NODES, ALIAS_RATIO * len(written)):
        return (f"aliases (*name) expand this document to {expanded:,} values from {len(written):,} written; "
                "write the values out instead of nesting aliases")
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


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


class Reuse(Protocol):
    """Parses files keeping what did not change since the last load (`reusing.DocumentReuse`)."""

    def parse(self, paths: Sequence[str]) -> tuple[Config, list[Diagnostic]] | None:
        """`parse_documents` of every document of `paths`, or None: load them plainly (any problem)."""


def load_config(
    paths: Sequence[str], *, validators: Sequence[Validator] = (), reuse: Reuse | None = None
) -> LoadResult:
    """Load, parse and validate the files as one config; run extra validators.

    Diagnostics come in file order, errors and warnings. With `reuse`, the
    documents unchanged since its last load are not read again (the same
    answer: tests/test_config_reuse.py). Errors about one
    Service do not reject the config: that Service carries its `problem` and
    stays pending, the rest is served (`supervisor.config.isolation`). Raises
    OSError when a file cannot be read. The validators (plugins' hooks) run
    only on a config without config-level errors.
    """
    documents: list[Document] = []
    diagnostics: list[Diagnostic] = []
    reused = None
    if reuse is not None:
        try:
            reused = reuse.parse(paths)
        except Exception:  # a bug in the shortcut must not cost the config: the plain load decides
            log.debug("config.reuse-failed files=%s", ",".join(paths), exc_info=True)
    for path in paths if reused is None else ():
        docs, problems = load_documents(path)
        documents.extend(docs)
        diagnostics.extend(problems)
    try:
        config, problems = parse_documents(documents) if reused is None else reused
        diagnostics.extend(problems)
        # Config objects that failed to parse are missing from `config`, so
        # cross-object warnings ("no pool can serve this Service") would mostly
        # echo those errors; they come back once the errors are fixed.
        parsed_cleanly = not config_errors(diagnostics)
        diagnostics.extend(d for d in validate(config) if d.is_error or parsed_cleanly)
        if not config_errors(diagnostics):
            for validator in validators:
                diagnostics.extend(validator(config))
        isolated = isolate(config, diagnostics)
    except Exception as exc:
        # A bug of ours on input nobody foresaw: say so in the usual format
        # (and keep the last good config) rather than kill `check` or the
        # watcher. The fuzz suite asserts this never happens. The traceback
        # only at debug level: `metalloid check` must print diagnostics, not
        # a traceback.
        log.debug("config.internal-error files=%s", ",".join(paths), exc_info=True)
        return LoadResult(config=Config(), diagnostics=(*diagnostics, internal_error(paths, exc)), rejected=True)
    return LoadResult(config=isolated, diagnostics=tuple(diagnostics), rejected=bool(config_errors(diagnostics)))


def load_config_files(
    paths: Sequence[str], *, validators: Sequence[Validator] = (), reuse: Reuse | None = None
) -> tuple[Config | None, list[Diagnostic]]:
    """`load_config` as (Config, diagnostics), the Config None when the config is rejected."""
    loaded = load_config(paths, validators=validators, reuse=reuse)
    return (None if loaded.rejected else loaded.config), list(loaded.diagnostics)


INTERNAL = "internal"


def internal_error(paths: Sequence[str], exc: BaseException) -> Diagnostic:
    """The diagnostic for an exception metalloid did not expect while checking `paths`."""
    file = paths[0] if paths else "<config>"
    return error(Source(file=file, line=1), "Config", INTERNAL,
                 f"metalloid failed while checking this config ({type(exc).__name__}: {exc}); this is a bug, "
                 "please report it with the file; the last good config stays in force")
