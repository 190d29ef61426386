"""libyaml reads valid configs; the pure-Python reader decides everything else, with the same result.

`load_text` parses with libyaml first (~3x faster for 1,000 Services, bench/runtime.py)
and falls back to the pure-Python loader on any problem, whose messages are the
diagnostics. These tests pin that both give identical documents (values, types
and every line) and that a problem still gets the pure-Python diagnostic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor.config import loading
from supervisor.config.documents import LocatedDict, LocatedList

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted([*ROOT.glob("examples/*.yaml"), *ROOT.glob("tests/fixtures/metallb-samples/*.yaml")])


def _same(a: Any, b: Any, where: str) -> None:
    assert type(a) is type(b), where
    if isinstance(a, LocatedDict):
        assert (a.line, a.key_lines, list(a)) == (b.line, b.key_lines, list(b)), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, LocatedList):
        assert (a.line, a.item_lines, len(a)) == (b.line, b.item_lines, len(b)), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _slow(text: str) -> tuple[list[Any], list[Any]]:
    return loading._read(loading._LineLoader(text), "c.yaml")  # type: ignore[no-any-return]


@pytest.mark.skipif(loading._CPARSER is None, reason="PyYAML without libyaml")
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_libyaml_and_pure_python_read_the_same_documents(path: Path) -> None:
    text = path.read_text()
    fast_docs, fast_diags = loading._read(loading._FastLineLoader(text), "c.yaml")
    slow_docs, slow_diags = _slow(text)
    assert fast_diags == slow_diags
    assert len(fast_docs) == len(slow_docs)
    for fast, slow in zip(fast_docs, slow_docs, strict=True):
        assert (fast.file, fast.line, fast.index) == (slow.file, slow.line, slow.index)
        _same(fast.body, slow.body, f"{path.name}:{fast.line}")


def test_samples_exist() -> None:
    assert len(SAMPLES) >= 5


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",                        # duplicate key
    "a: !!binary aGVsbG8=\n",              # unsupported tag
    "a: [1, 2\n",                          # syntax
    "a:\n  - b\n c: d\n",                  # indentation
    "x: &a [*a]\n",                        # recursive alias
    "a: 2024-01-01\nb: yes\nc: 0o17\nd: 1_000\ne: .inf\n",  # YAML 1.2 scalars, valid
], ids=["duplicate", "binary", "unclosed", "indent", "recursive-alias", "scalars"])
def test_any_text_gets_the_pure_python_answer(text: str) -> None:
    docs, diags = loading.load_text(text, file="c.yaml")
    slow_docs, slow_diags = _slow(text)
    assert diags == slow_diags
    assert [d.body for d in docs] == [d.body for d in slow_docs]


@pytest.mark.skipif(loading._CPARSER is None, reason="PyYAML without libyaml")
@pytest.mark.parametrize(("depth", "problem"), [(loading.MAX_NESTING, False), (loading.MAX_NESTING + 1, True)])
def test_without_anchors_libyaml_counts_the_depth_the_walk_would(depth: int, problem: bool) -> None:
    # `a: [[...]]`: the root mapping, the value lists, and the innermost scalar are `depth` levels.
    text = "a: " + "[" * (depth - 2) + "x" + "]" * (depth - 2) + "\n"
    fast = loading._FastLineLoader(text)
    assert fast.counts_depth  # no `&`: the walk is skipped
    assert bool(loading._read(fast, "c.yaml")[1]) is problem
    assert bool(_slow(text)[1]) is problem
    assert not loading._FastLineLoader("a: &x [1]\nb: *x\n").counts_depth


TRICKY = {
    "nulls-and-empties": "a:\nb: ~\nc: {}\nd: []\ne: ''\n",
    "lists-of-maps": "a:\n  - b: 1\n    c: [x, {d: e}]\n  - - f\n    - g: [h]\n",
    "duplicate-nested": "a:\n  b: 1\n  b: 2\nc: [{d: 1, d: 2}]\n",
    "non-string-keys": "1: a\ntrue: b\n~: c\n1.5: d\nx: {2: y}\n",
    "explicit-tags": "a: !!str 1\n!!str b: !!int '5'\nc: !!map {d: !!seq [e]}\nf: !!float '1.5'\n",
    "value-and-merge-tagged-keys": "? !!value =\n: a\nb:\n  ? !!merge x\n  : {c: d}\n",
    "unsupported-tag-deep-inside": "a:\n  b: [c, {d: !!binary aGVsbG8=}]\n",
    "flow-and-quotes": "{a: 'b', \"c\": [d, \"e f\"], g: {h: i}}\n",
    "several-documents": "---\na: 1\n---\n- b\n---\nc: {d: [e]}\n...\n---\n",
    "big-int": "a: 1" + "0" * 5000 + "\n",
}


@pytest.mark.skipif(loading._CPARSER is None, reason="PyYAML without libyaml")
@pytest.mark.parametrize("text", list(TRICKY.values()), ids=list(TRICKY))
def test_libyaml_builds_strings_mappings_and_lists_as_the_generic_constructor(text: str) -> None:
    fast = loading._FastLineLoader(text)
    assert fast.counts_depth  # no anchor: `_build` reads it
    fast_docs, fast_diags = loading._read(fast, "c.yaml")
    slow_docs, slow_diags = _slow(text)
    assert fast_diags == slow_diags
    assert len(fast_docs) == len(slow_docs)
    for a, b in zip(fast_docs, slow_docs, strict=True):
        assert (a.line, a.index) == (b.line, b.index)
        _same(a.body, b.body, f"line {a.line}")


@pytest.mark.skipif(loading._CPARSER is None, reason="PyYAML without libyaml")
@pytest.mark.parametrize(("depth", "problem"), [(loading.MAX_NESTING, False), (loading.MAX_NESTING + 1, True)])
def test_nested_mappings_count_their_depth_too(depth: int, problem: bool) -> None:
    # `a: {a: {... x}}`: every mapping and the innermost scalar are levels.
    text = "{a: " * (depth - 1) + "x" + "}" * (depth - 1) + "\n"
    fast = loading._FastLineLoader(text)
    assert fast.counts_depth
    assert bool(loading._read(fast, "c.yaml")[1]) is problem
