"""The start-up parse reaches the file watcher once, and the supervisor keeps no copy of it.

`specs.FirstMessage` hands its first message over once (a restarted worker
gets the other), and the inbox's writer thread (`channels.Outgoing`) drops a
message once it is written instead of holding it until the next one.
"""

from __future__ import annotations

import gc
import weakref
from multiprocessing import Pipe

from supervisor.messages import ParsedAtStart
from supervisor.supervising.channels import Outgoing, WorkerInbox
from supervisor.supervising.specs import FirstMessage
from tests.runtime_helpers import wait_for


def test_the_first_message_is_handed_over_once() -> None:
    first, after = ParsedAtStart(documents=b"parse"), ParsedAtStart()
    box = FirstMessage(first, after=after)
    assert box.take() is first
    assert box.take() is after
    assert box.take() is after


class Big:
    """A message stand-in a weak reference can follow."""

    def __init__(self, size: int) -> None:
        self.data = b"x" * size


def test_the_inbox_writer_keeps_no_message_it_has_written() -> None:
    reader, writer = Pipe(duplex=False)
    inbox = Outgoing(writer, "watcher")
    message = Big(300_000)  # more than the pipe holds: the writer blocks until the worker reads
    gone = weakref.ref(message)
    inbox.put(message)
    del message
    received = WorkerInbox(reader).get(timeout=5)
    assert isinstance(received, Big) and len(received.data) == 300_000
    wait_for(lambda: inbox.qsize() == 0, 5, what="written")
    gc.collect()
    assert gone() is None
    inbox.close()
    inbox.join(timeout=5)
