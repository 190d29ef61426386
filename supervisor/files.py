"""Reading a file an operator (or an attacker) may have replaced by something that is not a file.

`open(path).read()` hangs forever on a FIFO with no writer, reads without end
from `/dev/zero` or a symlink to it, and loads a 50 MB mistake into memory
before anyone can say it is too big. The config loader, the config watcher's
change detection and the state file all read through `read_regular_file`,
which refuses, with a message saying what the path is and how to fix it,
anything that is not a regular file or is larger than the caller's limit,
and never blocks on opening.

Plain OSErrors (no such file, permission denied) pass through unchanged: the
callers already report those in their own words.
"""

from __future__ import annotations

import errno
import os
import stat


class RefusedFile(Exception):
    """The path exists but is not something metalloid reads; the message names it and the fix."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


def describe_mode(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def read_regular_file(path: str | os.PathLike[str], *, limit: int, what: str = "this file",
                      follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them.

    Raises `RefusedFile` for anything else (a FIFO, a device, a directory, a
    file over `limit`; a symlink too when `follow_symlinks` is false) and
    OSError when the path cannot be opened at all. `what` names the file's
    role in the size message ("a config file").
    """
    name = os.fspath(path)
    # O_NONBLOCK: opening a FIFO without a writer returns at once instead of
    # waiting for one. O_NOCTTY: a terminal device never becomes our tty.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
        if os.path.islink(name):
            raise RefusedFile(name, "is a symbolic link, which metalloid does not follow for this file (someone "
                                    "could point it anywhere); replace it with a regular file")
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        if not follow_symlinks and exc.errno == errno.ELOOP:  # it became a symlink after the check
            raise RefusedFile(name, "is a symbolic link, which metalloid does not follow for this file; "
                                    "replace it with a regular file") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedFile(name, f"is {describe_mode(st.st_mode)}, not a regular file; point metalloid at a "
                                    "regular file")
        if st.st_size > limit:
            raise RefusedFile(name, f"is {human_size(st.st_size)}, over the {human_size(limit)} limit for "
                                    f"{what}; check that the path names the right file")
        chunks: list[bytes] = []
        total = 0
        # Read one byte past the limit: a file growing while we read is refused too.
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise RefusedFile(name, f"grew over the {human_size(limit)} limit for {what} while being read; "
                                    "check what writes to it")
        return b"".join(chunks)
    finally:
        os.close(fd)
