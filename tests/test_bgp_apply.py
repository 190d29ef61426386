"""How the bgp announcer applies FRR configuration: whole first, then as deltas, whole again
after an FRR restart or a refused delta. A fake FRR records the calls (no daemons); the lab
test (tests/test_bgp_lab.py) checks the real one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.bgp.announcer import BGPAnnouncer
from plugins.bgp.frr import FRRError, FRRSettings
from plugins.bgp.frrdelta import compute
from tests.fakes import RecordingHost

OLD = "router bgp 64500\n address-family ipv4 unicast\n  network 192.0.2.10/32\n exit-address-family\nexit\n"
NEW = OLD.replace("  network 192.0.2.10/32\n", "  network 192.0.2.10/32\n  network 192.0.2.11/32\n")
NEWER = OLD.replace("192.0.2.10", "192.0.2.12")


@dataclass
class FakeFRR:
    settings: FRRSettings
    calls: list[tuple[str, str]] = field(default_factory=list)
    refuse_deltas: bool = False
    dead_once: list[str] = field(default_factory=list)

    def apply(self, text: str, timeout: float = 120.0) -> None:
        self.calls.append(("full", text))

    def apply_delta(self, script: str, text: str, timeout: float = 120.0) -> None:
        if self.refuse_deltas:
            raise FRRError("vtysh -f delta.conf failed (1): line 3: % Unknown command")
        self.calls.append(("delta", script))

    def dead(self) -> list[str]:
        dead, self.dead_once = self.dead_once, []
        return dead

    def stop_daemons(self) -> None:
        pass

    def start_daemons(self) -> list[str]:
        return []


def announcer(tmp_path: Path, *, incremental: bool = True) -> tuple[BGPAnnouncer, FakeFRR]:
    frr = FakeFRR(FRRSettings(run_dir=tmp_path, manage_daemons=True, incremental_apply=incremental))
    bgp = BGPAnnouncer(RecordingHost(), frr=frr, binder=object())  # type: ignore[arg-type]
    return bgp, frr


def apply(bgp: BGPAnnouncer, text: str) -> dict[str, Any]:
    bgp._set_desired(text)
    bgp._reconcile()
    return {"last_apply": bgp.snapshot.last_apply, "failures": bgp.snapshot.delta_failures}


def test_whole_first_then_only_the_difference(tmp_path: Path) -> None:
    bgp, frr = announcer(tmp_path)
    assert apply(bgp, OLD) == {"last_apply": "full", "failures": 0}
    assert apply(bgp, NEW) == {"last_apply": "delta", "failures": 0}
    assert frr.calls == [("full", OLD), ("delta", compute(OLD, NEW).script)]
    apply(bgp, NEW)  # unchanged: nothing sent
    assert len(frr.calls) == 2


def test_a_refused_delta_falls_back_to_the_whole_configuration(tmp_path: Path) -> None:
    bgp, frr = announcer(tmp_path)
    apply(bgp, OLD)
    frr.refuse_deltas = True
    assert apply(bgp, NEW) == {"last_apply": "full", "failures": 1}
    assert frr.calls[-1] == ("full", NEW)
    frr.refuse_deltas = False
    assert apply(bgp, NEWER) == {"last_apply": "delta", "failures": 1}
    assert frr.calls[-1] == ("delta", compute(NEW, NEWER).script)


def test_a_restarted_frr_gets_the_whole_configuration(tmp_path: Path) -> None:
    bgp, frr = announcer(tmp_path)
    apply(bgp, OLD)
    frr.dead_once = ["bgpd"]
    bgp._reconcile()  # the restart: what FRR runs is unknown now, so all of it goes again
    assert frr.calls[-1] == ("full", OLD)
    assert bgp.snapshot.frr_restarts == 1
    assert apply(bgp, NEW)["last_apply"] == "delta"


def test_incremental_apply_off_sends_everything_through_frr_reload(tmp_path: Path) -> None:
    bgp, frr = announcer(tmp_path, incremental=False)
    apply(bgp, OLD)
    apply(bgp, NEW)
    assert frr.calls == [("full", OLD), ("full", NEW)]


BIND_CONFIG = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.254}
---
apiVersion: metalloid.io/v1alpha1
kind: Settings
metadata: {name: s}
spec: {bindLocal: true}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 10.0.0.1}]}
"""
SERVICE = """---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, loadBalancerIP: 192.0.2.10, ports: [{port: 80}]}
"""


class RecordingBinder:
    def __init__(self) -> None:
        self.bound: set[str] = set()

    def bind(self, ip: Any) -> None:
        self.bound.add(str(ip))

    def unbind(self, ip: Any) -> None:
        self.bound.discard(str(ip))


def test_an_address_leaves_lo_only_after_frr_has_withdrawn_its_route(tmp_path: Path) -> None:
    """bindLocal: bound before FRR announces; unbound once FRR runs the configuration without the
    route (the router stops sending first), or after UNBIND_WAIT_SECONDS if FRR never takes it."""
    from plugins.bgp.announcer import UNBIND_WAIT_SECONDS
    from supervisor.plugin_testing import FakeHost, config_from_yaml, make_view

    frr = FakeFRR(FRRSettings(run_dir=tmp_path, manage_daemons=True))
    binder = RecordingBinder()
    host = FakeHost("n1")
    bgp = BGPAnnouncer(host, frr=frr, binder=binder)  # type: ignore[arg-type]
    with_service, without = config_from_yaml(BIND_CONFIG + SERVICE), config_from_yaml(BIND_CONFIG)
    bgp.update(make_view(with_service, "n1"))
    assert binder.bound == {"192.0.2.10"}
    bgp._reconcile()  # the worker applies it
    assert "network 192.0.2.10/32" in frr.calls[-1][1]
    bgp.update(make_view(without, "n1"))
    bgp.tick(0.0)
    assert binder.bound == {"192.0.2.10"}  # FRR still advertises it: keep answering
    bgp._reconcile()
    assert "no network 192.0.2.10/32" in frr.calls[-1][1]
    bgp.tick(0.0)
    assert binder.bound == set()
    assert host.remembered[-1] == {"bound": []}  # the recovery file follows, once per batch
    # Back, then gone again while FRR takes nothing (a stuck worker): unbound at the deadline.
    bgp.update(make_view(with_service, "n1"))
    bgp._reconcile()
    bgp.update(make_view(without, "n1"))
    now = time.monotonic()
    bgp.tick(now)
    assert binder.bound == {"192.0.2.10"}
    bgp.tick(now + UNBIND_WAIT_SECONDS + 1)
    assert binder.bound == set()


def _neighbors(state: str, sent: int, out_queue: int) -> dict[str, Any]:
    return {"default": {"10.0.10.254": {"bgpState": state, "messageStats": {"depthOutq": out_queue},
                                        "addressFamilyInfo": {"ipv4Unicast": {"sentPrefixCounter": sent}}}}}


@dataclass
class DrainingFRR(FakeFRR):
    """Answers `show bgp ... neighbors` from a script (the last answer repeats) and times each call."""

    answers: list[dict[str, Any]] = field(default_factory=list)
    at: dict[str, float] = field(default_factory=dict)

    def show(self, command: str, timeout: float = 10.0) -> Any:
        self.calls.append(("show", command))
        self.at["last show"] = time.monotonic()
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def stop_daemons(self) -> None:
        self.calls.append(("stop", ""))
        self.at["stop"] = time.monotonic()


def draining(tmp_path: Path, answers: list[dict[str, Any]], drain: float) -> tuple[BGPAnnouncer, DrainingFRR]:
    frr = DrainingFRR(FRRSettings(run_dir=tmp_path, manage_daemons=True, drain_seconds=drain), answers=answers)
    bgp = BGPAnnouncer(RecordingHost(), frr=frr, binder=object())  # type: ignore[arg-type]
    apply(bgp, OLD)
    return bgp, frr


def test_a_graceful_stop_waits_for_the_withdrawal_on_the_wire_then_drains(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level("INFO")
    bgp, frr = draining(tmp_path, [_neighbors("Established", 1, 0), _neighbors("Established", 0, 2),
                                   _neighbors("Established", 0, 0)], drain=0.2)
    bgp.stop(handover=True)
    kinds = [kind for kind, _ in frr.calls]
    # The withdrawal (the apply after the first, full one), three polls until sent, then FRR stops.
    assert kinds == ["full", "delta", "show", "show", "show", "stop"], kinds
    assert "no router bgp 64500" in frr.calls[1][1]  # what the fake ran is taken away
    # Until the drain is over the node keeps FRR (and the bound IPs): the router is still moving flows.
    assert frr.at["stop"] - frr.at["last show"] >= 0.2
    assert any(m.startswith("bgp.withdrawn_all") and m.endswith("sent=True drain=0.2s") for m in caplog.messages)


def test_a_withdrawal_frr_never_confirms_does_not_hold_the_stop(tmp_path: Path, monkeypatch: Any,
                                                                caplog: Any) -> None:
    caplog.set_level("INFO")
    monkeypatch.setattr("plugins.bgp.announcer.WITHDRAWAL_SENT_WAIT_SECONDS", 0.1)
    bgp, frr = draining(tmp_path, [_neighbors("Established", 1, 0)], drain=0.0)
    bgp.stop(handover=True)
    assert frr.calls[-1] == ("stop", "")
    assert any(m.startswith("bgp.withdrawn_all") and "sent=False" in m for m in caplog.messages), caplog.messages


def test_sessions_that_are_down_are_not_waited_for() -> None:
    from plugins.bgp.announcer import withdrawal_sent
    from plugins.bgp.frr import parse_neighbors

    assert withdrawal_sent(parse_neighbors(_neighbors("Active", 3, 1)))
    assert not withdrawal_sent(parse_neighbors(_neighbors("Established", 0, 1)))
    assert not withdrawal_sent(parse_neighbors(_neighbors("Established", 1, 0)))
    assert withdrawal_sent(parse_neighbors(_neighbors("Established", 0, 0)))
