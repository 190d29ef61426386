"""`python -m tests.fakeapi`: the fake API server as a process of its own (the lab tests).

A lab test runs it inside a network namespace so that real `metalloid
controller` / `metalloid speaker` processes reach it over a kubeconfig, and
kills it to make an API outage. `--seed` files (multi-document YAML) are
created before the port opens; a `status` in a seed object is written through
the status subresource afterwards, as a controller or kubelet would. It prints
`listening URL` on stdout once it serves, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import yaml

from tests.fakeapi.server import FakeApiServer


def seed(api: FakeApiServer, path: Path) -> int:
    created = 0
    for obj in yaml.safe_load_all(path.read_text()):
        if not obj:
            continue
        status = obj.get("status")
        made = api.create(obj)
        if status and api.store_resource(obj["kind"]).status:
            meta = made["metadata"]
            api.update_status(obj["kind"], meta.get("namespace"), meta["name"], status)
        created += 1
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=Path, action="append", default=[], metavar="YAML")
    parser.add_argument("--bookmark-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    api = FakeApiServer(host=args.host, port=args.port, bookmark_interval=args.bookmark_interval)
    count = sum(seed(api, path) for path in args.seed)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    api.start()
    print(f"listening {api.url} objects={count}", flush=True)
    stop.wait()
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
