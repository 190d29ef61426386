"""How late does a 100 ms membership-style loop wake up on a loaded host?

The failure detector's slack (deadAfterSeconds - 3 x interval) and its stall
rule (docs/failover.md) rest on this number. Run:

    python bench/loop_jitter.py BUSY SECONDS

BUSY busy-looping processes load the cores while a loop like the membership
worker's (select() on a UDP socket until the next 100 ms tick) records how late
each turn wakes. Prints p50 / p99 / max lateness.
"""

from __future__ import annotations

import multiprocessing
import select
import socket
import sys
import time

INTERVAL = 0.1


def spin() -> None:
    x = 0
    while True:
        x += 1


def main(busy: int, seconds: float) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=spin, daemon=True) for _ in range(busy)]
    for w in workers:
        w.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        late: list[float] = []
        last = time.monotonic()
        end = last + seconds
        while last < end:
            select.select([sock], [], [], INTERVAL)
            now = time.monotonic()
            late.append(now - last - INTERVAL)
            last = now
    for w in workers:
        w.kill()
        w.join()
    late.sort()
    p50, p99 = late[len(late) // 2], late[int(len(late) * 0.99)]
    print(f"busy={busy} turns={len(late)} late p50={p50 * 1e3:.1f}ms p99={p99 * 1e3:.1f}ms max={late[-1] * 1e3:.1f}ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4, float(sys.argv[2]) if len(sys.argv) > 2 else 20.0)
