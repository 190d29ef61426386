"""The FRR side of the bgp plugin: its daemons, its configuration reloads, its JSON answers.

Two ways to run, chosen by the AnnouncerConfig setting `manage_daemons`:

- managed (standalone's default): the plugin starts zebra, bgpd and bfdd in
  this node's network namespace, each with its own pid file, vty socket and
  zebra socket under `run_dir` (nothing in /etc/frr or /run/frr, so the
  distribution's frr.service and other FRR instances are never touched), and
  restarts them if one dies. It stops them, by PID, when it stops.
- external (Kubernetes: the `frr` container beside the speaker): the daemons
  belong to someone else; the plugin only writes `run_dir/frr.conf` and
  applies it through the vty sockets in `run_dir`.

Either way a configuration is applied in one of two ways. `apply` runs FRR's
own `frr-reload.py --reload`, which reads the running configuration back,
diffs it against the file and runs the difference, as MetalLB's reloader
does; it is right whatever FRR runs, and slow (it diffs in Python twice and
runs every removal as its own vtysh process). `apply_delta` sends a script
computed by `frrdelta` (the difference from the configuration this plugin
applied last) through one `vtysh -f`; the announcer uses it while it knows
what FRR runs and falls back to `apply` when it does not.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAEMONS = ("zebra", "bgpd", "bfdd")
CONFIG_NAME = "frr.conf"


class FRRError(RuntimeError):
    """FRR refused a command or is unreachable; the message says which and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FRRSettings:
    """Where FRR is. Built from the `bgp` AnnouncerConfig's `spec.settings` by `settings_from`."""

    run_dir: Path
    manage_daemons: bool
    bin_dir: Path = Path("/usr/lib/frr")
    vtysh: str = "/usr/bin/vtysh"
    reload_script: str = "/usr/lib/frr/frr-reload.py"
    secrets_dir: Path | None = None
    poll_seconds: float = 1.0
    # Apply changes as their difference through vtysh (else every change through frr-reload.py).
    incremental_apply: bool = True
    # On a graceful stop, how long the node keeps FRR and the bound IPs after its peers were sent the
    # withdrawal: the router needs that long to move the flows (a few ms idle, far more when loaded).
    drain_seconds: float = 0.5


def settings_from(raw: Mapping[str, Any], *, node: str, mode: str) -> FRRSettings:
    """The plugin's settings with defaults; `{node}` in paths is this node's name."""

    def path(key: str, default: str) -> Path:
        return Path(str(raw.get(key, default)).replace("{node}", node))

    managed = bool(raw.get("manage_daemons", mode == "standalone"))
    default_run = "/run/metalloid/frr/{node}" if managed else "/var/run/frr"
    secrets = raw.get("secrets_dir", "/etc/metalloid/bgp-secrets" if mode == "standalone" else None)
    return FRRSettings(
        run_dir=path("run_dir", default_run),
        manage_daemons=managed,
        bin_dir=path("frr_bin_dir", "/usr/lib/frr"),
        vtysh=str(raw.get("vtysh", "/usr/bin/vtysh")),
        reload_script=str(raw.get("frr_reload", "/usr/lib/frr/frr-reload.py")),
        secrets_dir=Path(str(secrets).replace("{node}", node)) if secrets else None,
        poll_seconds=float(raw.get("poll_seconds", 1.0)),
        incremental_apply=bool(raw.get("incremental_apply", True)),
        drain_seconds=float(raw.get("drain_seconds", 0.5)),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _daemon_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


class FRR:
    """One FRR instance: its daemons (when managed), reloads and queries."""

    def __init__(self, settings: FRRSettings, *, netns: str | None = None) -> None:
        """`netns`: start the daemons in this named network namespace (labs and benches; the
        plugin's daemons run in the node's own namespace)."""
        self.settings = settings
        self._wrap = ["ip", "netns", "exec", netns] if netns else []
        self.run_dir = settings.run_dir
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- daemons ----------------------------------------------------------

    def _pidfile(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"

    def pid(self, daemon: str) -> int | None:
        """The daemon's PID from its pid file, if that process is alive and is that daemon."""
        try:
            pid = int(self._pidfile(daemon).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and _daemon_name(pid) == daemon else None

    def pids(self) -> dict[str, int]:
        return {d: pid for d in DAEMONS if (pid := self.pid(d)) is not None}

    def dead(self) -> list[str]:
        """The managed daemons that are not running (empty when not managed)."""
        if not self.settings.manage_daemons:
            return []
        for child in self._children.values():
            child.poll()  # reap, so a dead child is not a zombie counted alive
        return [d for d in DAEMONS if self.pid(d) is None]

    def _prepare_run_dir(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "empty.conf").touch()
        (self.run_dir / "vtysh.conf").write_text("service integrated-vtysh-config\n")
        # The daemons drop privileges to the frr user: it must own its sockets' directory.
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("frr")
                os.chown(self.run_dir, entry.pw_uid, entry.pw_gid)
            except KeyError:
                pass

    def start_daemons(self, timeout: float = 10.0) -> list[str]:
        """Start the managed daemons that are not running (adopting live ones); the ones started."""
        if not self.settings.manage_daemons:
            return []
        self._prepare_run_dir()
        started = []
        for daemon in DAEMONS:
            if self.pid(daemon) is not None:
                continue
            for leftover in (self.run_dir / f"{daemon}.vty", self._pidfile(daemon)):
                leftover.unlink(missing_ok=True)
            argv = [str(self.settings.bin_dir / daemon), "-P", "0", "-f", str(self.run_dir / "empty.conf"),
                    "--vty_socket", str(self.run_dir), "-i", str(self._pidfile(daemon)),
                    "-z", str(self.run_dir / "zserv.api"), "--log", f"file:{self.run_dir / daemon}.log"]
            if daemon == "bfdd":
                argv += ["--bfdctl", str(self.run_dir / "bfdd.sock")]
            # Its own session: a signal to metalloid's process group does not reach FRR,
            # so FRR keeps routing until the plugin withdraws and stops it.
            self._children[daemon] = subprocess.Popen([*self._wrap, *argv], stdin=subprocess.DEVNULL,
                                                      stdout=subprocess.DEVNULL,
                                                      stderr=subprocess.DEVNULL, start_new_session=True)
            started.append(daemon)
            # zebra's socket must exist before bgpd and bfdd connect to it.
            self._wait_for(daemon, timeout)
        return started

    def _wait_for(self, daemon: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        socket = self.run_dir / f"{daemon}.vty"
        while time.monotonic() < deadline:
            if socket.exists() and self.pid(daemon) is not None:
                return
            child = self._children.get(daemon)
            if child is not None and child.poll() is not None:
                raise FRRError(f"{daemon} exited at start with status {child.returncode}; see "
                               f"{self.run_dir / daemon}.log")
            time.sleep(0.02)
        raise FRRError(f"{daemon} did not open {socket} within {timeout:g}s; see {self.run_dir / daemon}.log")

    def stop_daemons(self, timeout: float = 5.0) -> None:
        """Stop the managed daemons by PID (SIGTERM, then SIGKILL)."""
        if not self.settings.manage_daemons:
            return
        for daemon in reversed(DAEMONS):
            pid = self.pid(daemon)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.02)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        for child in self._children.values():
            child.poll()

    # -- configuration ----------------------------------------------------

    def _vtysh(self) -> list[str]:
        return [self.settings.vtysh, "--vty_socket", str(self.run_dir), "--config_dir", str(self.run_dir)]

    def apply(self, text: str, timeout: float = 120.0) -> None:
        """Make `text` FRR's running configuration (frr-reload.py: only the difference is applied)."""
        path = self.run_dir / CONFIG_NAME
        vtysh_conf = self.run_dir / "vtysh.conf"
        if not vtysh_conf.exists():  # frr-reload.py's vtysh reads it from --confdir
            vtysh_conf.write_text("service integrated-vtysh-config\n")
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
        argv = ["python3", self.settings.reload_script, "--reload", "--stdout", "--log-level", "error",
                "--vty_socket", str(self.run_dir), "--bindir", str(Path(self.settings.vtysh).parent),
                "--confdir", str(self.run_dir), "--rundir", str(self.run_dir), str(path)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
            raise FRRError(f"frr-reload.py failed ({proc.returncode}): {' | '.join(detail)}")

    def apply_delta(self, script: str, text: str, timeout: float = 120.0) -> None:
        """Run `script` (from `frrdelta.compute`) through one `vtysh -f`, then record `text` as the
        configuration file. Raises FRRError when vtysh fails or FRR refuses any line: FRR may then
        hold part of the script, so the caller must fall back to `apply`."""
        delta = self.run_dir / "delta.conf"
        delta.write_text(script)
        proc = subprocess.run([*self._vtysh(), "-f", str(delta)], capture_output=True, text=True,
                              timeout=timeout, check=False)
        # vtysh -f prints nothing on success; FRR's refusals start with "%" ("line 3: % Unknown command").
        refused = [line for line in (proc.stdout + proc.stderr).splitlines() if "%" in line]
        if proc.returncode != 0 or refused:
            detail = (refused or (proc.stderr.strip() or proc.stdout.strip()).splitlines())[-3:]
            raise FRRError(f"vtysh -f {delta} failed ({proc.returncode}): {' | '.join(detail)}")
        path = self.run_dir / CONFIG_NAME
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)

    def show(self, command: str, timeout: float = 10.0) -> Any:
        """A `show ... json` command's answer, parsed."""
        proc = subprocess.run([*self._vtysh(), "-c", command], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise FRRError(f"vtysh -c {command!r} failed ({proc.returncode}): "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
        try:
            return json.loads(proc.stdout or "{}")
        except ValueError as exc:
            raise FRRError(f"vtysh -c {command!r} answered no JSON: {proc.stdout[:200]!r}") from exc

    def running_config(self) -> str:
        proc = subprocess.run([*self._vtysh(), "-c", "show running-config"], capture_output=True, text=True,
                              timeout=10, check=False)
        return proc.stdout


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbor:
    """One BGP neighbor as FRR reports it."""

    address: str
    vrf: str
    state: str
    prefixes_sent: int
    updates_sent: int
    uptime: str = ""
    out_queue: int = 0  # messages bgpd has built but not yet written to the session's socket

    @property
    def established(self) -> bool:
        return self.state == "Established"


def parse_neighbors(answer: Mapping[str, Any]) -> tuple[Neighbor, ...]:
    """`show bgp vrf all neighbors json` as Neighbors (pure)."""
    found = []
    for vrf_name, vrf in sorted(answer.items()):
        if not isinstance(vrf, Mapping):
            continue
        for address, info in sorted(vrf.items()):
            if not isinstance(info, Mapping) or "bgpState" not in info:
                continue
            families = info.get("addressFamilyInfo") or {}
            sent = sum(int(f.get("sentPrefixCounter", 0)) for f in families.values() if isinstance(f, Mapping))
            stats = info.get("messageStats") or {}
            found.append(Neighbor(address=address, vrf="" if vrf_name == "default" else vrf_name,
                                  state=str(info["bgpState"]), prefixes_sent=sent,
                                  updates_sent=int(stats.get("updatesSent", 0)),
                                  uptime=str(info.get("bgpTimerUpString", "")),
                                  out_queue=int(stats.get("depthOutq", 0))))
    return tuple(found)


def secret_password(secrets_dir: Path | None, namespace: str, name: str,
                    read_secret: Any = None) -> str | None:
    """A passwordSecret's password: from Kubernetes (`read_secret(namespace, name)`), or the file
    `secrets_dir/NAME` (standalone; or `secrets_dir/NAMESPACE/NAME` when that exists). None if unreadable."""
    if read_secret is not None:
        value = read_secret(namespace, name)
        return str(value) if value else None
    if secrets_dir is None:
        return None
    for candidate in (secrets_dir / namespace / name, secrets_dir / name):
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


