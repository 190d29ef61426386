"""A bridge from the worker's inbox queue to select(): a thread and a socketpair.

The membership loop sleeps in select() on its UDP socket until the next
deadline; the inbox may be a multiprocessing or a plain queue (tests), neither
of which select() can wait on. A daemon thread moves each message to a deque
and writes one byte to a socketpair that the loop selects on.
"""

from __future__ import annotations

import collections
import socket
import threading

from supervisor.messages import Control
from supervisor.supervising.child import Inbox


class InboxReader:
    """Inbox messages in `messages`; `wake_r` becomes readable when one arrived."""

    def __init__(self, inbox: Inbox) -> None:
        self.messages: collections.deque[object] = collections.deque()
        self.wake_r, self._wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self._inbox = inbox
        threading.Thread(target=self._pump, name="membership-inbox", daemon=True).start()

    def _pump(self) -> None:
        while True:
            msg = self._inbox.get()
            self.messages.append(msg)
            try:
                self._wake_w.send(b"!")
            except OSError:
                return
            if msg is Control.STOP:
                return

    def drain_wakeups(self) -> None:
        try:
            while self.wake_r.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.wake_r.close()
        self._wake_w.close()
