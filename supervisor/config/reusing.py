"""Reloads read again only the YAML documents that changed.

A reload of 1,000 Services that adds one spent most of the watcher's time
reading and parsing the 999 it already had (libyaml's composition, the
Located containers, every field with its line). A YAML stream splits
exactly at lines that start with `---`: a document is independent of the
others (anchors, keys and tags are per document), and each document's parse
(`parsing.parse_document`) is a pure function of its text, its first line
and its index. So `DocumentReuse` keeps, per file, what each document chunk
(the text from one `---` line to the next) parsed to, keyed by that text,
its first line and its index; on the next load only the chunks that are new
or moved are read (alone, with their own line numbers), and everything is
put together again by `parsing.combine`, in file order.

Only a clean file is handled here: a file with any problem (YAML, size,
encoding), or one whose splitting could differ from the YAML reader's
(directives, `...` markers, line breaks other than `\\n`, a BOM), gets `None`
and goes through the plain load (`loading.load_config`), whose diagnostics
are the reference. Validation across objects always runs on the whole config.

`export` and `adopt` hand what one process kept to another: `metalloid run`'s
start-up check parses the files once, and the file watcher's first load
adopts that parse instead of reading every document again (the keys are the
chunks' exact text, so whatever changed in between is read again, and the
watcher still reads and checks the files itself).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Sequence

from supervisor.config.diagnostics import Diagnostic
from supervisor.config.documents import Document
from supervisor.config.loading import MAX_CONFIG_BYTES, load_text
from supervisor.config.model import Config
from supervisor.config.parsing import Parsed, combine, parse_document
from supervisor.files import RefusedFile, read_regular_file
from supervisor.pickling import dumps_whole

log = logging.getLogger(__name__)

# A document starts at `---` in column 0 followed by a blank or the line's end (the YAML reader's rule).
_START = re.compile(r"^---(?=[ \t\n]|\Z)", re.MULTILINE)
# What could make the reader split elsewhere or count lines differently: a
# directive (%YAML, %TAG), a document end marker, a BOM, and the line breaks
# YAML knows besides \n (\r, NEL, LS, PS).
_UNSPLITTABLE = re.compile(r"^(?:%|\.\.\.)|[\r\x85\u2028\u2029\ufeff]", re.MULTILINE)
# Reading the changed chunks one by one costs a reader each; beyond this many
# (a first load, a file rewritten) the whole file is read at once and split after.
ONE_BY_ONE = 16

# (file, first line (0-based), index of its first document, text) → what its documents parsed to
Key = tuple[str, int, int, str]


def split_documents(text: str) -> list[tuple[int, str]] | None:
    """The document chunks of `text` as (first line, 0-based; text), or None when it must not be split."""
    if _UNSPLITTABLE.search(text):
        return None
    starts = [m.start() for m in _START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    chunks = []
    line, previous = 0, 0
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        line += text.count("\n", previous, begin)
        previous = begin
        chunks.append((line, text[begin:end]))
    return chunks


class DocumentReuse:
    """What each document chunk of the last load parsed to (`loading.Reuse`); one per watcher."""

    def __init__(self) -> None:
        self._kept: dict[Key, tuple[Parsed, ...]] = {}
        self.read_last = 0  # chunks read in the last load (tests, logs)

    def export(self) -> bytes:
        """What the last load kept, pickled with the line tracking (`pickling.dumps_whole`), for `adopt`."""
        return dumps_whole(self._kept) if self._kept else b""

    def adopt(self, data: bytes) -> bool:
        """Keep what another process's `export` holds, as if this one had loaded it; False if unusable.

        The data comes from our own supervisor (it crossed a worker pipe as
        every message does); whatever fails to unpickle only costs the
        shortcut: the next load reads every document.
        """
        if not data:
            return False
        try:
            kept = pickle.loads(data)
        except Exception:
            log.debug("config.reuse-adopt-failed", exc_info=True)
            return False
        if not isinstance(kept, dict):
            return False
        self._kept = kept
        return True

    def parse(self, paths: Sequence[str]) -> tuple[Config, list[Diagnostic]] | None:
        """`parsing.parse_documents` of the files, reading only what changed; None to use the plain load.

        Raises OSError when a file cannot be opened, as `loading.load_documents` does.
        """
        kept: dict[Key, tuple[Parsed, ...]] = {}
        parsed: list[Parsed] = []
        self.read_last = 0
        for path in paths:
            found = self._file(path, kept)
            if found is None:
                return None
            parsed.extend(found)
        # Only this load's chunks stay: an edited file does not pile up old versions.
        self._kept = kept
        return combine(parsed)

    def _file(self, path: str, kept: dict[Key, tuple[Parsed, ...]]) -> list[Parsed] | None:
        try:
            text = read_regular_file(path, limit=MAX_CONFIG_BYTES, what="a config file").decode("utf-8")
        except (RefusedFile, UnicodeDecodeError):
            return None
        chunks = split_documents(text)
        if chunks is None:
            return None
        known = {(key[1], key[3]) for key in self._kept if key[0] == path}
        whole = None
        if sum((line, chunk) not in known for line, chunk in chunks) > ONE_BY_ONE:
            whole = self._read_whole(path, text, chunks)
            if whole is None:
                return None
        result: list[Parsed] = []
        index = 0
        for position, (line, chunk) in enumerate(chunks):
            key = (path, line, index, chunk)
            found = whole[position] if whole is not None else self._kept.get(key)
            if found is None:
                found = self._read_one(path, line, chunk, index)
                if found is None:
                    return None
            kept[key] = found
            result.extend(found)
            index += len(found)
        return result

    def _read_whole(self, path: str, text: str, chunks: list[tuple[int, str]]) -> list[tuple[Parsed, ...]] | None:
        """Every chunk's documents from one reading of the whole file (a first load: one reader, not 1,000)."""
        documents, problems = load_text(text, file=path)
        self.read_last += len(chunks)
        if problems:
            return None
        # Each document belongs to the chunk its first line falls in.
        by_chunk: list[list[Parsed]] = [[] for _ in chunks]
        position = 0
        for doc in documents:
            while position + 1 < len(chunks) and chunks[position + 1][0] <= doc.line - 1:
                position += 1
            by_chunk[position].append(parse_document(doc))
        return [tuple(found) for found in by_chunk]

    def _read_one(self, path: str, line: int, chunk: str, index: int) -> tuple[Parsed, ...] | None:
        # Blank lines in front give every mark the line it has in the file.
        documents, problems = load_text("\n" * line + chunk, file=path)
        self.read_last += 1
        if problems:
            return None
        return tuple(parse_document(Document(file=path, line=d.line, index=index + i, body=d.body))
                     for i, d in enumerate(documents))
