"""/status, /healthz and /readyz latency with 1,000 Services while the config is reloaded.

    .venv/bin/python bench/status.py [--mode lab|loopback] [--services 1000] [--seconds 20] [--reload-every 0.5]

One real `metalloid run` (bench/runtime.py's `Run`: lab mode with the real layer 2
announcer and membership in a private namespace as root, loopback with the
recording announcer otherwise). While a SIGHUP reload (one Service more each
time) is sent every `--reload-every` seconds, two client threads ask at once:
one `/status` after the other (a fresh connection each, as `metalloid status`),
and `/healthz` + `/readyz` every 10 ms. Prints p50/p99/max per endpoint and
how many requests failed or timed out (5 s). The probes must never wait behind
/status: their p99 is the figure to compare.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from runtime import Run  # noqa: E402

from supervisor.lab.netns import Lab, enter_netns, require_root  # noqa: E402
from tests.runtime_helpers import wait_for  # noqa: E402


class Series:
    def __init__(self, name: str) -> None:
        self.name = name
        self.times: list[float] = []
        self.failed = 0
        self.lock = threading.Lock()

    def get(self, url: str) -> None:
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=5.0) as response:
                response.read()
                ok = response.status == 200
        except (urllib.error.URLError, OSError):
            ok = False
        with self.lock:
            if ok:
                self.times.append(time.monotonic() - t0)
            else:
                self.failed += 1

    def line(self) -> str:
        values = sorted(self.times)
        if not values:
            return f"{self.name:8} no answer, {self.failed} failed"
        p = lambda q: values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000  # noqa: E731
        return (f"{self.name:8} n={len(values):5}  p50 {p(0.5):6.1f} ms  p99 {p(0.99):6.1f} ms  "
                f"max {values[-1] * 1000:6.1f} ms  failed {self.failed}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("lab", "loopback"), default="lab" if require_root() is None else "loopback")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--reload-every", type=float, default=0.5)
    args = parser.parse_args()
    if args.mode == "lab":
        problem = require_root()
        if problem:
            print(f"bench/status.py: {problem} (or --mode loopback)", file=sys.stderr)
            return 1
        with Lab(prefix=f"mls{os.getpid() % 100000}", hosts=["n1"]) as lab:
            lab.run("n1", "ip", "link", "set", "lo", "up")
            enter_netns(lab.host("n1").netns)
            return measure(args, lab)
    return measure(args, None)


def measure(args: argparse.Namespace, lab: Lab | None) -> int:
    print(f"mode {args.mode}, {args.services} services, reload every {args.reload_every}s for {args.seconds}s, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="mls-bench-") as tmpdir:
        tmp = Path(tmpdir)
        run = Run(tmp, args.services, tmp / "pycache", lab=lab)
        try:
            wait_for(run.ready, 60, what="ready")
            status, healthz, readyz = Series("/status"), Series("/healthz"), Series("/readyz")
            stop = time.monotonic() + args.seconds
            done = threading.Event()

            def status_client() -> None:
                while not done.is_set():
                    status.get(f"{run.url}/status")

            def probe_client() -> None:
                while not done.is_set():
                    healthz.get(f"{run.url}/healthz")
                    readyz.get(f"{run.url}/readyz")
                    time.sleep(0.01)

            threads = [threading.Thread(target=status_client), threading.Thread(target=probe_client)]
            for t in threads:
                t.start()
            reloads = 0
            while time.monotonic() < stop:
                reloads += 1
                run.write_config(args.services + reloads, lab)
                run.proc.send_signal(signal.SIGHUP)
                time.sleep(args.reload_every)
            done.set()
            for t in threads:
                t.join()
            print(f"{reloads} reloads")
            for series in (status, healthz, readyz):
                print(series.line())
        finally:
            run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
