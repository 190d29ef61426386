"""Allocator cost per Service against pool size: a 10,000-address range, a /16, a /8, an IPv6 /64.

Allocates N Services (default 10,000) with the pure allocator into one pool of
each size and prints the median microseconds per allocation over several runs,
then the ratio largest/smallest. MetalLB walks addresses one by one, so its
cost grows with the pool; metalloid's free-address index must not (target:
ratio <= 1.5, and 10,000 allocations in under 1 s). A second table measures a
restart: the same Services rebuilt from the previous state, plus one new.

    .venv/bin/python bench/allocator.py [--services 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supervisor.allocating.allocator import allocate
from supervisor.config.model import (
    AddressRange,
    Config,
    IPAddress,
    IPAddressPool,
    Service,
    ServiceKey,
    ServicePort,
)


def _pool(text: str, services: int) -> IPAddressPool:
    if text == "range":
        first = ipaddress.IPv4Address("10.0.0.0")
        last = ipaddress.IPv4Address(int(first) + services - 1)
        return IPAddressPool(name="pool", addresses=(AddressRange(first=first, last=last, text=f"{first}-{last}"),))
    network = ipaddress.ip_network(text)
    return IPAddressPool(
        name="pool", addresses=(AddressRange(first=network[0], last=network[-1], text=text),)
    )


def _config(pool_text: str, services: int, family: int) -> Config:
    return Config(
        pools=(_pool(pool_text, services),),
        services=tuple(
            Service(namespace=f"ns{i % 50}", name=f"svc{i:05}", ports=(ServicePort(port=80),), ip_families=(family,))
            for i in range(services)
        ),
    )


def _median_seconds(
    config: Config, previous: dict[ServiceKey, tuple[IPAddress, ...]], repeat: int
) -> tuple[float, int]:
    timings = []
    assigned = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = allocate(config, previous)
        timings.append(time.perf_counter() - start)
        assigned = len(result.assignments)
    return statistics.median(timings), assigned


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.services
    pools = [(f"range of {n:,}", "range", 4), ("/16", "10.0.0.0/16", 4), ("/8", "10.0.0.0/8", 4),
             ("IPv6 /64", "fd00::/64", 6)]
    print(f"allocator: {n:,} Services into one pool, median of {args.repeat} runs (python {sys.version.split()[0]})")
    print(f"{'POOL':<18}{'ADDRESSES':>24}{'TOTAL ms':>11}{'µs/ALLOC':>10}{'REBUILD µs':>12}")
    per_alloc: list[float] = []
    for label, text, family in pools:
        config = _config(text, n, family)
        seconds, assigned = _median_seconds(config, {}, args.repeat)
        if assigned != n:
            print(f"{label}: only {assigned} of {n} assigned", file=sys.stderr)
            return 1
        # A restart: everything rebuilt from the state file, then one new Service allocated.
        previous = {k: a.ips for k, a in allocate(config).assignments.items()}
        grown = Config(pools=config.pools, services=(*config.services, Service(
            namespace="zz", name="new", ports=(ServicePort(port=80),), ip_families=(family,))))
        rebuild, _ = _median_seconds(grown, previous, args.repeat)
        size = _pool(text, n).addresses[0].size
        micros = seconds / n * 1e6
        per_alloc.append(micros)
        print(f"{label:<18}{size:>24,}{seconds * 1e3:>11.1f}{micros:>10.1f}{rebuild / (n + 1) * 1e6:>12.1f}")
    ratio = max(per_alloc) / min(per_alloc)
    verdict = "ok" if ratio <= 1.5 else "OVER TARGET"
    print(f"ratio largest/smallest µs per allocation: {ratio:.2f} (target <= 1.5: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
