"""Runtime figures of `metalloid run`: start→ready, kill -9→healed, memory (PSS), reload, stop.

    .venv/bin/python bench/runtime.py [--mode lab|loopback] [--services 1000] [--kills 5] [--memory-only]

`--mode lab` (the default as root) runs a real `metalloid run` with the real
layer 2 announcer inside a private network namespace (supervisor/lab/netns.py:
one host, n1, plus a peer Node n2 in the config so membership runs as on a real
cluster, `--insecure`); this process joins that namespace itself to reach the
HTTP port on its loopback, so no host interface is ever touched.
`--mode loopback` needs no root: the in-tree recording announcer
(tests/recording_plugin.py) on the host's loopback, no membership.
Bytecode is cached under a private PYTHONPYCACHEPREFIX (an installed metalloid
has its .pyc files; this tree's environment sets PYTHONDONTWRITEBYTECODE), and
one warm-up start fills it before anything is measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supervisor.lab.netns import Lab, enter_netns, require_root  # noqa: E402
from tests.runtime_helpers import (  # noqa: E402
    METALLOID,
    NODE,
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
    def __init__(self, tmp: Path, services: int, pycache: Path, *, lab: Lab | None) -> None:
        self.config = tmp / "config.yaml"
        self.write_config(services, lab)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = run_env(PYTHONPYCACHEPREFIX=str(pycache))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        argv = [str(METALLOID), "run", "--config", str(self.config), "--node", "n1", "--state-dir", str(tmp / "state"),
                "--metrics-port", str(self.port), "--metrics-host", "127.0.0.1"]
        argv += ["--announcers", "layer2", "--insecure"] if lab is not None else ["--announcers", "recording"]
        self.started = time.monotonic()
        # In lab mode this process already lives in n1's namespace, so the child does too.
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=(tmp / "stderr.log").open("wb"), start_new_session=True)

    def write_config(self, services: int, lab: Lab | None) -> None:
        text = config_text(services)
        if lab is not None:
            text += NODE.format(name="n2")  # a peer, so membership runs as on a real cluster
        self.config.write_text(text)

    def ready(self) -> bool:
        return get_text(f"{self.url}/readyz")[0] == 200

    def workers(self) -> dict[str, dict[str, object]]:
        return {w["name"]: w for w in get_json(f"{self.url}/status")["workers"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def ms(seconds: list[float]) -> str:
    values = sorted(seconds)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


def memory(run: Run, services: int, *, lab: bool) -> None:
    if lab:
        # The node at work: peer n2 never answers, so once the startup grace is
        # over n1 announces every Service, and the supervisor holds the layer 2
        # announcer's report of all of them. Read earlier (1 s after /readyz
        # alone) the figure depended on how far the announcer had got.
        wait_for(lambda: len(get_json(f"{run.url}/status", timeout=5)["announcements"]) >= services, 60,
                 interval=0.5, what="every Service announced")
    time.sleep(1.0)  # let the last status reports and GC settle
    pids = [run.proc.pid, *descendants_of(run.proc.pid)]
    sizes = {p: pss_kib(p) for p in pids}
    names = {int(str(w["pid"])): str(name) for name, w in run.workers().items() if w.get("pid")}
    parts = ", ".join(f"{names.get(p, 'supervisor' if p == run.proc.pid else other_name(p))} {kib / 1024:.1f}"
                      for p, kib in sizes.items())
    print(f"PSS total ({len(pids)} processes, {services} services): {sum(sizes.values()) / 1024:.1f} MiB ({parts})"
          f"{restarted(run.workers())}")


def restarted(workers: dict[str, dict[str, object]]) -> str:
    """Names the workers restarted before the reading (a fresh process is smaller; on a loaded machine
    the layer 2 announcer can be killed as hung during its first 1,000-Service plan)."""
    again = [f"{name} {w['restarts']}" for name, w in sorted(workers.items()) if w.get("restarts")]
    return f"; restarted before the reading: {', '.join(again)}" if again else ""


def other_name(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return str(pid)
    for marker, name in (("resource_tracker", "mp-tracker"), ("forkserver", "forkserver")):
        if marker in cmdline:
            return name
    return str(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("lab", "loopback"), default="lab" if require_root() is None else "loopback",
                        help="lab: real layer 2 announcer in a network namespace (root); loopback: recording "
                             "announcer, no root")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5, help="kill -9 rounds per worker")
    parser.add_argument("--memory-only", action="store_true", help="measure PSS only (no starts, kills, reloads)")
    parser.add_argument("--starts", type=int, default=3, help="start → ready rounds")
    parser.add_argument("--reloads", type=int, default=5, help="SIGHUP → visible rounds")
    parser.add_argument("--keep-log", type=Path, help="copy the measured node's log (stderr) here at the end")
    args = parser.parse_args()
    if args.mode == "lab":
        problem = require_root()
        if problem:
            print(f"bench/runtime.py: {problem} (or --mode loopback)", file=sys.stderr)
            return 1
        with Lab(prefix=f"mlt{os.getpid() % 100000}", hosts=["n1"]) as lab:
            lab.run("n1", "ip", "link", "set", "lo", "up")
            enter_netns(lab.host("n1").netns)
            return measure(args, lab)
    return measure(args, None)


def measure(args: argparse.Namespace, lab: Lab | None) -> int:
    announcer = "announcer-layer2" if lab is not None else "announcer-recording"
    print(f"mode {args.mode}: {announcer}{', membership (peer n2)' if lab is not None else ''}")
    with tempfile.TemporaryDirectory(prefix="mlt-bench-") as tmpdir:
        tmp = Path(tmpdir)
        pycache = tmp / "pycache"
        (tmp / "warm").mkdir()
        warm = Run(tmp / "warm", 10, pycache, lab=lab)
        try:
            wait_for(warm.ready, 60, what="warm-up ready")
        finally:
            warm.stop()

        if not args.memory_only:
            starts = []
            for i in range(args.starts):
                (tmp / f"s{i}").mkdir()
                run = Run(tmp / f"s{i}", args.services, pycache, lab=lab)
                try:
                    wait_for(run.ready, 60, what="ready")
                    starts.append(time.monotonic() - run.started)
                finally:
                    run.stop()
            if starts:
                print(f"start → ready ({args.services} services): {ms(starts)}")

        (tmp / "main").mkdir()
        run = Run(tmp / "main", args.services, pycache, lab=lab)
        try:
            wait_for(run.ready, 60, what="ready")
            memory(run, args.services, lab=lab is not None)
            if args.memory_only:
                return 0
            for worker in ("watcher", "allocator", announcer):
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
                if healed:
                    print(f"kill -9 {worker} → RUNNING and ready again: {ms(healed)}")

            reloads = []
            for i in range(args.reloads):
                run.write_config(args.services + i + 1, lab)
                t0 = time.monotonic()
                run.proc.send_signal(signal.SIGHUP)
                want = args.services + i + 1

                def reloaded(n: int = want) -> bool:
                    return len(get_json(f"{run.url}/status")["services"]) == n

                wait_for(reloaded, 30, interval=0.005, what="reload")
                reloads.append(time.monotonic() - t0)
            if reloads:
                print(f"reload (SIGHUP → new service in /status, {args.services} services): {ms(reloads)}")
            if lab is not None:
                # The node announces every Service (memory() waited): the stop withdraws them all.
                announced = len(get_json(f"{run.url}/status", timeout=5)["announcements"])
                t0 = time.monotonic()
                run.stop()
                print(f"stop (SIGTERM → exited, {announced} IPs announced): {(time.monotonic() - t0) * 1000:.0f} ms")
        finally:
            run.stop()
            if args.keep_log is not None:
                shutil.copyfile(tmp / "main" / "stderr.log", args.keep_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
