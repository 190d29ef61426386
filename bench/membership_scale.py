"""Membership at cluster scale: one real node hearing 2, 50 and 250 peers' valid heartbeats.

In a private lab (a bridge, `n1` running `metalloid run` with the layer 2
announcer, and a `player` namespace; namespaces made here and removed at the
end), the config names n1 and N peers `p001`..`pNNN`. The player holds every
peer's InternalIP on its eth0 (10.0.1.x, 10.0.2.x, ... in a /16) and, from one
UDP socket per peer bound to that address, plays what a real peer would: a
heartbeat to n1 at the config's default interval, authenticated with the
cluster key, with its own incarnation and sequence, echoing n1's incarnation
and n1's assignment digest as it last heard them (so the tables agree and no
table chunks are due, as in a healthy cluster). The peers' send times are
at random phases of the interval (in 1 ms slots), as independent nodes'
are.

For each N, once every peer counts as alive on heartbeats in n1's /status:

1. over `--window` seconds: the membership worker's CPU (utime + stime from
   /proc/<pid>/stat, and each apart: `sys` includes the kernel delivering
   every sent datagram through the veth pair to the player, which a real NIC
   does not do in the sender's time) as % of one core, how often its loop
   went to sleep (voluntary context switches a second: its wake-ups), the supervisor's and the whole node's
   (every process of its session), the worker's RSS/PSS (smaps_rollup),
   bytes/s on n1's eth0, the size of n1's /status;
2. `false deaths`: `membership.peer_dead` lines in n1's log during the window
   and until each silenced peer (must be 0);
3. `detection`: the player stops one peer (`--deaths` times, a different peer
   each time); n1's `membership.peer_dead` line gives the silence it measured
   (last heartbeat -> declared dead) and its log time minus the player's
   last send of that peer (`after last send`, log times have ms resolution).

The 2-peer run is the baseline for the ratios (same run, same machine).

    sudo .venv/bin/python bench/membership_scale.py
    sudo .venv/bin/python bench/membership_scale.py --peers 2,50,250,500 --window 30

Target (issue 16): the membership worker at <= 5 % of a core with 250 peers
and the default settings.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from supervisor.config.model import MembershipSettings  # noqa: E402
from supervisor.lab.netns import Lab, require_root  # noqa: E402
from supervisor.lab.nodes import FETCH, HTTP_PORT, log_time, spawn_node  # noqa: E402
from supervisor.membership.codec import NO_DIGEST, Heartbeat, PacketType, decode, encode  # noqa: E402
from supervisor.membership.keys import read_key_file  # noqa: E402
from tests.runtime_helpers import cpu_seconds, smaps_kib  # noqa: E402

NODE, PLAYER = "n1", "player"
SUBNET = "10.0.0.0/16"
DEFAULTS = MembershipSettings()
SLOT_SECONDS = 0.001
DEAD = re.compile(r"^(\S+) \S+ \S+ membership\.peer_dead peer=(\S+) reason=(\S+) silence_seconds=(\S+)", re.M)


def peer_names(n: int) -> list[str]:
    return [f"p{i:03d}" for i in range(1, n + 1)]


def peer_address(i: int) -> str:
    """Peer number i (1-based): 10.0.1.1 .. 10.0.1.250, 10.0.2.1, ... (off n1's and the player's 10.0.0.x)."""
    return f"10.0.{1 + (i - 1) // 250}.{1 + (i - 1) % 250}"


def config_text(n: int) -> str:
    """The homelab's pool and Services (first-pool moved into the /16), n1 and n peers."""
    meta = "metadata: {name: first-pool, namespace: metallb-system}\n"
    docs = [
        f"apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n{meta}spec:\n  addresses: [10.0.200.10-10.0.200.99]\n",
        f"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\n{meta}spec:\n  ipAddressPools: [first-pool]\n",
    ]
    for name in ("ingress", "pihole", "grafana"):
        docs.append(f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: apps}}\n"
                    "spec:\n  type: LoadBalancer\n  ports: [{port: 80, protocol: TCP}]\n")
    nodes = [(NODE, "10.0.0.1"), *((name, peer_address(i)) for i, name in enumerate(peer_names(n), 1))]
    for name, address in nodes:
        docs.append(f"apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"
                    f"status:\n  addresses: [{{type: InternalIP, address: {address}}}]\n")
    return "---\n".join(docs)


# -- the player (runs inside the player namespace) ------------------------------------------------


class Player:
    """Every peer's socket, incarnation and sequence; what each last heard from n1."""

    def __init__(self, n: int, key: bytes, target: tuple[str, int], interval: float) -> None:
        self.key, self.target, self.interval = key, target, interval
        self.names = peer_names(n)
        self.known = frozenset({NODE})
        self.socks: dict[str, socket.socket] = {}
        self.selector = selectors.DefaultSelector()
        base = time.time_ns()
        self.incarnation = {name: base + i for i, name in enumerate(self.names)}
        self.seq = dict.fromkeys(self.names, 0)
        self.echo = dict.fromkeys(self.names, 0)
        self.digest = dict.fromkeys(self.names, NO_DIGEST)
        self.silenced: list[str] = []
        self.last_sent: dict[str, float] = {}
        self.sent = self.received = self.refused = 0
        for i, name in enumerate(self.names, 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((peer_address(i), target[1]))
            sock.setblocking(False)
            self.socks[name] = sock
            self.selector.register(sock, selectors.EVENT_READ, name)
        # Each peer sends at its own random phase of the interval (1 ms slots), as independent nodes do.
        slots = max(1, round(interval / SLOT_SECONDS))
        self.slots: list[list[str]] = [[] for _ in range(slots)]
        phases = random.Random(n)
        for name in self.names:
            self.slots[phases.randrange(slots)].append(name)

    def send(self, name: str) -> None:
        self.seq[name] += 1
        hb = Heartbeat(type=PacketType.HEARTBEAT, sender=name, receiver=NODE, incarnation=self.incarnation[name],
                       seq=self.seq[name], sent_at_ns=time.time_ns(), echo_incarnation=self.echo[name],
                       digest=self.digest[name])  # fmt: skip
        try:
            self.socks[name].sendto(encode(hb, self.key), self.target)
            self.sent += 1
            self.last_sent[name] = time.time()
        except OSError:
            pass  # n1 not up yet (ICMP refused): the next interval tries again

    def receive(self, name: str) -> None:
        sock = self.socks[name]
        while True:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                return
            result = decode(data, key=self.key, receiver=name, known=self.known)
            if isinstance(result, Heartbeat):
                self.received += 1
                self.echo[name], self.digest[name] = result.incarnation, result.digest
            else:
                self.refused += 1

    def silence_next(self) -> None:
        """Stop the next live peer (SIGUSR1); print when it last sent."""
        name = next(p for p in self.names if p not in self.silenced)
        self.silenced.append(name)
        print(json.dumps({"silenced": name, "last_sent": self.last_sent.get(name)}), flush=True)

    def play(self) -> None:
        wanted: list[bool] = []
        stopping: list[bool] = []
        signal.signal(signal.SIGUSR1, lambda *_: wanted.append(True))
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        start = time.monotonic()
        slot = 0
        while not stopping:
            if wanted:
                wanted.clear()
                self.silence_next()
            for name in self.slots[slot % len(self.slots)]:
                if name not in self.silenced:
                    self.send(name)
            slot += 1
            due = start + slot * SLOT_SECONDS
            while (left := due - time.monotonic()) > 0:
                for key, _ in self.selector.select(left):
                    self.receive(str(key.data))
        print(json.dumps({"sent": self.sent, "received": self.received, "refused": self.refused}), flush=True)


def play_main(args: argparse.Namespace) -> int:
    key = read_key_file(args.key)
    host, _, port = args.target.rpartition(":")
    Player(args.play, key, (host, int(port)), args.interval).play()
    return 0


# -- the driver -------------------------------------------------------------------------------


def session_pids(sid: int) -> list[int]:
    """Every process of the node's session (the supervisor and its workers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def sleeps(pid: int) -> int:
    """How often the process's main thread (the worker's loop) has gone to sleep: its voluntary context switches."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB."""
    fields = smaps_kib(pid)
    return fields["Rss"] / 1024, fields["Pss"] / 1024


class Run:
    """One N: the node, the player and what was measured."""

    def __init__(self, lab: Lab, workdir: Path, n: int, key: Path) -> None:
        self.lab, self.n, self.key = lab, n, key
        self.workdir = workdir / f"peers-{n}"
        self.workdir.mkdir()
        self.config = self.workdir / "metalloid.yaml"
        self.config.write_text(config_text(n))
        self.node = spawn_node(lab, NODE, config=self.config, key=key, workdir=self.workdir, announcers="layer2")
        argv = ["ip", "netns", "exec", lab.host(PLAYER).netns, sys.executable, str(Path(__file__).resolve()),
                "--play", str(n), "--key", str(key), "--target", f"{lab.host(NODE).ip}:{DEFAULTS.port}",
                "--interval", str(DEFAULTS.interval_for(n))]  # fmt: skip
        self.player = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)

    def log(self) -> str:
        path = self.workdir / f"{NODE}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def status(self) -> tuple[dict[str, object] | None, int]:
        url = f"http://{self.lab.host(NODE).ip}:{HTTP_PORT}/status"
        out = self.lab.run(PLAYER, sys.executable, "-c", FETCH, url, check=False, timeout=15)
        try:
            body = json.loads(out.stdout)[0]
        except (ValueError, IndexError):
            return None, 0
        return (json.loads(body), len(body)) if body else (None, 0)

    def wait_steady(self, timeout: float = 60.0) -> tuple[dict[str, object], int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, size = self.status()
            members = status.get("members", []) if status else []
            assert isinstance(members, list)
            alive = [m for m in members if m["alive"] and m.get("basis") == "heartbeat"]
            if status and len(alive) == self.n + 1:
                return status, size
            time.sleep(0.5)
        raise SystemExit(f"{self.n} peers: not all alive after {timeout:g} s; logs in {self.workdir}")

    def worker_pid(self, status: dict[str, object]) -> int:
        workers = status["workers"]
        assert isinstance(workers, list)
        return int(next(w["pid"] for w in workers if w["name"] == "membership"))

    def wire_bytes(self) -> int:
        out = self.lab.run(NODE, "cat", "/sys/class/net/eth0/statistics/rx_bytes",
                           "/sys/class/net/eth0/statistics/tx_bytes").stdout.split()  # fmt: skip
        return int(out[0]) + int(out[1])

    def measure(self, window: float) -> dict[str, float]:
        status, size = self.wait_steady()
        time.sleep(2.0)  # past the startup grace and the first reports
        worker = self.worker_pid(status)
        pids = session_pids(self.node.pid)
        before = {p: cpu_seconds(p) for p in pids}
        wire = self.wire_bytes()
        wakes = sleeps(worker)
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        after = {p: cpu_seconds(p) for p in pids if Path(f"/proc/{p}").exists()}
        wakes = sleeps(worker) - wakes
        wire = self.wire_bytes() - wire
        rss, pss = memory_mib(worker)

        def pct(pid: int, part: int | None = None) -> float:
            used = [a - b for a, b in zip(after[pid], before[pid], strict=True)]
            return 100 * (sum(used) if part is None else used[part]) / elapsed

        return {"worker_cpu": pct(worker), "worker_user": pct(worker, 0), "worker_sys": pct(worker, 1),
                "supervisor_cpu": pct(self.node.pid), "node_cpu": sum(pct(p) for p in after if p in before),
                "rss": rss, "pss": pss, "wire_bps": wire / elapsed, "status_bytes": size,
                "wakes": wakes / elapsed}  # fmt: skip

    def deaths(self, count: int) -> tuple[list[tuple[float, float]], int]:
        """Silence `count` peers one by one; [(silence, after last send)] and false deaths."""
        assert self.player.stdout is not None
        found: list[tuple[float, float]] = []
        silenced: set[str] = set()
        for _ in range(count):
            os.kill(self.player.pid, signal.SIGUSR1)
            told = json.loads(self.player.stdout.readline())
            silenced.add(told["silenced"])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                hit = [d for d in DEAD.findall(self.log()) if d[1] == told["silenced"]]
                if hit:
                    stamp, _, _, silence = hit[0]
                    found.append((float(silence), log_time(stamp) - float(told["last_sent"])))
                    break
                time.sleep(0.05)
            time.sleep(1.0)
        false = [d for d in DEAD.findall(self.log()) if d[1] not in silenced]
        return found, len(false)

    def stop(self) -> dict[str, int]:
        assert self.player.stdout is not None
        os.kill(self.player.pid, signal.SIGTERM)
        out, _ = self.player.communicate(timeout=10)
        self.lab.stop(self.node)
        lines = [line for line in out.splitlines() if line.startswith('{"sent"')]
        return json.loads(lines[-1]) if lines else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", default="2,50,250", help="peer counts, the first is the baseline")
    parser.add_argument("--window", type=float, default=20.0, help="seconds of CPU measurement per count")
    parser.add_argument("--deaths", type=int, default=3, help="peers silenced one by one per count")
    parser.add_argument("--play", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.play is not None:
        return play_main(args)
    problem = require_root()
    if problem:
        raise SystemExit(problem)
    counts = [int(c) for c in args.peers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="metalloid-scale-bench-"))
    key = workdir / "membership.key"
    key.write_text(secrets.token_hex(32))
    key.chmod(0o600)
    lab = Lab(prefix=f"msb{os.getpid() % 1000}", hosts=[NODE, PLAYER], subnet_v4=SUBNET)
    print(f"{os.cpu_count()} cores, load average {Path('/proc/loadavg').read_text().split()[0]} at start; "
          f"defaults: interval {DEFAULTS.interval_for(min(counts)):g}-{DEFAULTS.interval_for(max(counts)):g} s "
          f"(grows past 50 peers), deadline adaptive (3 intervals + a learnt margin); "
          f"{args.window:g} s windows, {args.deaths} deaths per count")
    print(f"{'peers':>5} | {'worker %core':>12} {'user':>5} {'sys':>5} {'ratio':>6} {'wakes/s':>7} | "
          f"{'sup. %':>6} {'node %':>6} | "
          f"{'RSS MiB':>7} {'PSS MiB':>7} | {'wire B/s':>9} {'/status B':>9} | "
          f"{'false':>5} | detection: silence / after last send (s)")
    base: float | None = None
    try:
        lab.create()
        prefix = ipaddress.IPv4Network(SUBNET).prefixlen
        for i in range(1, max(counts) + 1):
            lab.run(PLAYER, "ip", "addr", "add", f"{peer_address(i)}/{prefix}", "dev", "eth0")
        for n in counts:
            run = Run(lab, workdir, n, key)
            try:
                m = run.measure(args.window)
                deaths = min(args.deaths, n - 1)  # one peer always keeps talking
                found, false = run.deaths(deaths)
            finally:
                played = run.stop()
            base = m["worker_cpu"] if base is None else base
            ratio = m["worker_cpu"] / base if base else float("nan")
            detection = ", ".join(f"{s:.3f}/{a:.3f}" for s, a in found) or "not detected"
            if len(found) < deaths:
                detection += f" ({deaths - len(found)} not detected)"
            print(f"{n:5d} | {m['worker_cpu']:12.2f} {m['worker_user']:5.2f} {m['worker_sys']:5.2f} {ratio:6.1f} "
                  f"{m['wakes']:7.0f} | "
                  f"{m['supervisor_cpu']:6.2f} {m['node_cpu']:6.2f} | "
                  f"{m['rss']:7.1f} {m['pss']:7.1f} | {m['wire_bps']:9.0f} {m['status_bytes']:9.0f} | "
                  f"{false:5d} | {detection}   (player: {played})", flush=True)  # fmt: skip
    finally:
        lab.destroy()
    print(f"logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
