"""Runtime figures of `metalloid run`: start→ready, kill -9→healed, memory (PSS), reload.

    .venv/bin/python bench/runtime.py [--services 1000] [--kills 5]

Runs a real `metalloid run` (watcher, allocator, one announcer) on loopback
with the in-tree recording announcer (tests/recording_plugin.py), so it needs
neither root nor a network namespace and never touches a host interface.
Bytecode is cached under a private PYTHONPYCACHEPREFIX (an installed metalloid
has its .pyc files; this tree's environment sets PYTHONDONTWRITEBYTECODE), and
one warm-up start fills it before anything is measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.runtime_helpers import (  # noqa: E402
    METALLOID,
    config_text,
    descendants_of,
    free_port,
    get_json,
    get_text,
    pss_kib,
    run_env,
    wait_for,
)


class Run:
    def __init__(self, tmp: Path, services: int, pycache: Path, announcers: str = "recording") -> None:
        self.config = tmp / "config.yaml"
        self.config.write_text(config_text(services))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = run_env(PYTHONPYCACHEPREFIX=str(pycache))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(METALLOID), "run", "--config", str(self.config), "--node", "n1", "--state-dir", str(tmp / "state"),
             "--metrics-port", str(self.port), "--metrics-host", "127.0.0.1", "--announcers", announcers],
            env=env, stdout=subprocess.DEVNULL, stderr=(tmp / "stderr.log").open("wb"),
        )

    def ready(self) -> bool:
        return get_text(f"{self.url}/readyz")[0] == 200

    def workers(self) -> dict[str, dict[str, object]]:
        return {w["name"]: w for w in get_json(f"{self.url}/status")["workers"]}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)


def ms(seconds: list[float]) -> str:
    values = sorted(seconds)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5, help="kill -9 rounds per worker")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlt-bench-") as tmpdir:
        tmp = Path(tmpdir)
        pycache = tmp / "pycache"
        (tmp / "warm").mkdir()
        warm = Run(tmp / "warm", 10, pycache)
        wait_for(warm.ready, 60, what="warm-up ready")
        warm.stop()

        starts = []
        for i in range(3):
            (tmp / f"s{i}").mkdir()
            run = Run(tmp / f"s{i}", args.services, pycache)
            wait_for(run.ready, 60, what="ready")
            starts.append(time.monotonic() - run.started)
            run.stop()
        print(f"start → ready ({args.services} services): {ms(starts)}")

        (tmp / "main").mkdir()
        run = Run(tmp / "main", args.services, pycache)
        try:
            wait_for(run.ready, 60, what="ready")
            time.sleep(1.0)  # let the first status reports and GC settle
            pids = [run.proc.pid, *descendants_of(run.proc.pid)]
            total = sum(pss_kib(p) for p in pids)
            names = {str(w["pid"]): str(name) for name, w in run.workers().items()}
            parts = ", ".join(f"{names.get(str(p), 'supervisor' if p == run.proc.pid else 'mp-tracker')} "
                              f"{pss_kib(p) / 1024:.1f}" for p in pids)
            print(f"PSS total ({len(pids)} processes, {args.services} services): {total / 1024:.1f} MiB ({parts})")

            for worker in ("watcher", "allocator", "announcer-recording"):
                healed = []
                for _ in range(args.kills):
                    old = run.workers()[worker]["pid"]
                    assert isinstance(old, int)
                    t0 = time.monotonic()
                    os.kill(old, signal.SIGKILL)

                    # Poll only the cheap /readyz (a 1,000-service /status per poll would
                    # compete with the supervisor it measures): not ready, then ready.
                    wait_for(lambda: not run.ready(), 5, interval=0.002, what="not ready")
                    wait_for(run.ready, 30, interval=0.01, what=f"{worker} healed")
                    healed.append(time.monotonic() - t0)
                    assert run.workers()[worker]["pid"] != old
                    time.sleep(0.3)
                print(f"kill -9 {worker} → RUNNING and ready again: {ms(healed)}")

            reloads = []
            for i in range(5):
                run.config.write_text(config_text(args.services + i + 1))
                t0 = time.monotonic()
                run.proc.send_signal(signal.SIGHUP)
                want = args.services + i + 1

                def reloaded(n: int = want) -> bool:
                    return len(get_json(f"{run.url}/status")["services"]) == n

                wait_for(reloaded, 30, interval=0.005, what="reload")
                reloads.append(time.monotonic() - t0)
            print(f"reload (SIGHUP → new service in /status, {args.services} services): {ms(reloads)}")
        finally:
            run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
