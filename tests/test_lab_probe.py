"""The lab probe's outage arithmetic (pure) — the demo and bench/failover.py rely on it."""

from __future__ import annotations

import pytest

from supervisor.lab.probe import Outage, Sample, outages, parse_line


def s(at: float, who: str | None) -> Sample:
    return Sample(at=at, served_by=who)


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param([s(0, "n1"), s(1, "n1")], [], id="no-gap"),
        pytest.param([s(0, None), s(1, "n1")], [], id="startup-failures-are-not-an-outage"),
        pytest.param([s(0, "n1"), s(1, None), s(2, None), s(3, "n2")],
                     [Outage(start=1, end=3, before="n1", after="n2")], id="failover"),
        pytest.param([s(0, "n1"), s(1, None)], [], id="unfinished-gap-not-reported"),
        pytest.param([s(0, "n1"), s(1, "n2")], [Outage(start=1, end=1, before="n1", after="n2")],
                     id="seamless-handover-is-a-zero-gap"),
        pytest.param([s(0, "n1"), s(1, None), s(2, "n1"), s(3, None), s(5, "n2")],
                     [Outage(start=1, end=2, before="n1", after="n1"), Outage(start=3, end=5, before="n1", after="n2")],
                     id="two-gaps"),
    ],
)
def test_outages(samples: list[Sample], expected: list[Outage]) -> None:
    assert outages(samples) == expected


def test_parse_line() -> None:
    assert parse_line("12.5 n2") == Sample(at=12.5, served_by="n2")
    assert parse_line("12.5 -") == Sample(at=12.5, served_by=None)
    assert parse_line("garbage") is None
    assert parse_line("x y") is None
