"""A reload that reads only the changed documents gives exactly the plain load's answer.

`DocumentReuse` keeps what each document chunk parsed to; after every edit
below, the config and every diagnostic (with its line) must equal a fresh
`load_config` of the same files, and only the chunks that changed or moved
may have been read again. A parse handed to another process (`export`,
`adopt`: `metalloid run`'s start-up check to its file watcher) answers the
same, line tracking included, and is not read again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.loading import load_config
from supervisor.config.reusing import ONE_BY_ONE, DocumentReuse, split_documents
from tests.runtime_helpers import NODE, SERVICE, config_text

BAD_SERVICE = SERVICE.format(name="bad", namespace="default").replace("port: 80", "port: eighty")
EMPTY = "---\n# nothing here\n"
NOT_AN_OBJECT = "---\n- just\n- a list\n"


def _same_as_plain(reuse: DocumentReuse, paths: list[str]) -> None:
    reused = load_config(paths, reuse=reuse)
    plain = load_config(paths)
    assert reused == plain


def _services(n: int, *, start: int = 0) -> str:
    return "".join(SERVICE.format(name=f"svc-{i}", namespace="default") for i in range(start, start + n))


EDITS = {
    # name: the file's texts, one per load
    "append": [config_text(40), config_text(41), config_text(42)],
    "insert-in-the-middle": [config_text(40), config_text(0) + _services(20) + SERVICE.format(
        name="new", namespace="default") + _services(20, start=20)],
    "change-one": [config_text(40), config_text(40).replace("name: svc-7\n", "name: svc-seven\n")],
    "delete-one": [config_text(40), config_text(40).replace(SERVICE.format(name="svc-3", namespace="default"), "")],
    "object-error-comes-and-goes": [config_text(30), config_text(30) + BAD_SERVICE, config_text(30)],
    "config-error": [config_text(30), config_text(30).replace("10.20.0.0/16", "10.20.0.0/33"), config_text(30)],
    "yaml-error-in-one-document": [config_text(30), config_text(30) + "---\na: [1, 2\n", config_text(31)],
    "empty-and-non-object-documents": [config_text(30), EMPTY + config_text(30) + NOT_AN_OBJECT + EMPTY],
    "first-document-without-dashes": [config_text(30).removeprefix("---\n"), config_text(31).removeprefix("---\n")],
    "directive-is-not-split": [config_text(30), "%YAML 1.2\n" + config_text(30)],
    "crlf-is-not-split": [config_text(30), config_text(31).replace("\n", "\r\n")],
    "many-changes-read-whole": [config_text(30), config_text(30, pool="other", addresses="10.30.0.0/16")],
    "second-node": [config_text(30), config_text(30) + NODE.format(name="n2")],
}


@pytest.mark.parametrize("texts", list(EDITS.values()), ids=list(EDITS))
def test_every_load_is_the_plain_load(tmp_path: Path, texts: list[str]) -> None:
    path = tmp_path / "c.yaml"
    reuse = DocumentReuse()
    for text in texts:
        path.write_text(text, newline="")
        _same_as_plain(reuse, [str(path)])


def _field_lines(reuse: DocumentReuse, paths: list[str]) -> list[object]:
    config = load_config(paths, reuse=reuse).config
    return [o.field_lines for kind in (config.pools, config.l2_advertisements, config.services) for o in kind]


@pytest.mark.parametrize("texts", list(EDITS.values()), ids=list(EDITS))
def test_an_adopted_parse_answers_as_the_plain_load(tmp_path: Path, texts: list[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(texts[0], newline="")
    checked = DocumentReuse()
    load_config([str(path)], reuse=checked)
    assert any(_field_lines(DocumentReuse(), [str(path)]))
    for text in texts:
        adopted = DocumentReuse()
        assert adopted.adopt(checked.export()) == bool(checked.export())
        path.write_text(text, newline="")
        _same_as_plain(adopted, [str(path)])
        # Equality leaves the line tracking out; validation reads it.
        assert _field_lines(adopted, [str(path)]) == _field_lines(DocumentReuse(), [str(path)])


def test_an_adopted_parse_is_not_read_again(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(100) + BAD_SERVICE)
    checked = DocumentReuse()
    load_config([str(path)], reuse=checked)
    assert checked.read_last == 104
    adopted = DocumentReuse()
    assert adopted.adopt(checked.export())
    _same_as_plain(adopted, [str(path)])
    assert adopted.read_last == 0
    # Changed between the check and the watcher: only that document is read.
    path.write_text((config_text(100) + BAD_SERVICE).replace("name: svc-5\n", "name: svc-five\n"))
    adopted = DocumentReuse()
    adopted.adopt(checked.export())
    _same_as_plain(adopted, [str(path)])
    assert adopted.read_last == 1


@pytest.mark.parametrize("data", [b"", b"not a pickle", b"\x80\x05K\x01."], ids=["empty", "garbage", "not-a-dict"])
def test_an_unusable_parse_is_not_adopted_and_everything_is_read(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(10))
    reuse = DocumentReuse()
    assert not reuse.adopt(data)
    _same_as_plain(reuse, [str(path)])
    assert reuse.read_last == 13


def test_a_file_read_plainly_exports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("%YAML 1.2\n" + config_text(10))
    reuse = DocumentReuse()
    load_config([str(path)], reuse=reuse)
    assert reuse.export() == b""


def test_two_files_each_keep_their_documents(tmp_path: Path) -> None:
    pools, services = tmp_path / "pools.yaml", tmp_path / "services.yaml"
    pools.write_text(config_text(0))
    services.write_text(_services(30))
    reuse = DocumentReuse()
    _same_as_plain(reuse, [str(pools), str(services)])
    services.write_text(_services(31))
    _same_as_plain(reuse, [str(pools), str(services)])
    assert reuse.read_last == 1  # the new Service; pools.yaml and 30 Services were kept


def test_a_reload_reads_only_what_changed_or_moved(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(100))
    reuse = DocumentReuse()
    load_config([str(path)], reuse=reuse)
    assert reuse.read_last == 103  # a first load reads everything: pool, advertisement, 100 Services, the Node
    path.write_text(config_text(101))
    load_config([str(path)], reuse=reuse)
    assert reuse.read_last == 2  # svc-100, and the Node after it (moved down)
    load_config([str(path)], reuse=reuse)
    assert reuse.read_last == 0
    path.write_text(config_text(101).replace("name: svc-5\n", "name: svc-five\n"))
    load_config([str(path)], reuse=reuse)
    assert reuse.read_last == 1
    # The pool's name: in the pool and its advertisement.
    path.write_text(config_text(101, pool="p2").replace("name: svc-5\n", "name: svc-five\n"))
    load_config([str(path)], reuse=reuse)
    assert reuse.read_last == 2
    path.write_text(config_text(101).replace("    - port: 80\n", "    - port: 81\n"))
    load_config([str(path)], reuse=reuse)
    assert reuse.read_last > ONE_BY_ONE  # every Service changed: one reading of the whole file


@pytest.mark.parametrize(("text", "chunks"), [
    ("", [(0, "")]),
    ("a: 1\n", [(0, "a: 1\n")]),
    ("---\na: 1\n---\nb: 2\n", [(0, "---\na: 1\n"), (2, "---\nb: 2\n")]),
    ("# c\n--- # doc\na: 1\n---\n", [(0, "# c\n"), (1, "--- # doc\na: 1\n"), (3, "---\n")]),
    ("a: ---\n----\n---x: 1\n", [(0, "a: ---\n----\n---x: 1\n")]),  # not document starts
    ("--- |\n  text\n---\tb\n", [(0, "--- |\n  text\n"), (2, "---\tb\n")]),
    ("%YAML 1.2\n---\na: 1\n", None),
    ("a: 1\n...\n", None),
    ("a: 1\r\n", None),
    ("\ufeffa: 1\n", None),
])
def test_split_documents(text: str, chunks: list[tuple[int, str]] | None) -> None:
    assert split_documents(text) == chunks
