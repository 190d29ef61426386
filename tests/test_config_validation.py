"""Validation: one case per error and warning class; each message names file, line and value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from supervisor.config.diagnostics import Diagnostic, Severity
from supervisor.config.loading import load_config_files

POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {name}}}
spec:
  addresses:
{addresses}
"""
L2_ALL = """\
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all}
"""


def pool(name: str, *addresses: str) -> str:
    return POOL.format(name=name, addresses="\n".join(f"    - {a}" for a in addresses))


def service(body: str, *, name: str = "s", annotations: str = "") -> str:
    annotated = f"\n  annotations:\n{textwrap.indent(annotations, '    ')}" if annotations else ""
    return f"""---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: default{annotated}
spec:
  type: LoadBalancer
{textwrap.indent(body, '  ')}
"""


def check(tmp_path: Path, text: str) -> list[Diagnostic]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    _, diagnostics = load_config_files([str(path)])
    return diagnostics


# (id, config text, severity, expected line, substrings the message must contain)
CASES: list[tuple[str, str, Severity, int, tuple[str, ...]]] = [
    ("yaml-syntax", "apiVersion: v1\nkind: [Namespace\n", Severity.ERROR, 3, ("YAML/syntax",)),
    ("host-bits", pool("p", "10.0.0.1/24") + L2_ALL, Severity.WARNING, 6,
     ("IPAddressPool/p", "'10.0.0.1/24' has host bits set", "takes the whole prefix 10.0.0.0/24",
      "Write 10.0.0.0/24")),
    ("single-ip", pool("p", "10.0.0.7") + L2_ALL, Severity.WARNING, 6,
     ("IPAddressPool/p", "'10.0.0.7' is a single IP", "10.0.0.7/32", "MetalLB refuses the pool")),
    ("duplicate-namespace", pool("p", "10.0.0.0/24") + "  serviceAllocation:\n    namespaces: [a, b, a]\n"
     + L2_ALL, Severity.WARNING, 8, ("spec.serviceAllocation.namespaces[2]: 'a' is listed twice",
                                     "MetalLB refuses the whole configuration")),
    ("duplicate-advertised-pool", pool("main", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2}
        spec:
          ipAddressPools:
            - main
            - main
        """), Severity.WARNING, 14, ("L2Advertisement/l2", "spec.ipAddressPools[1]: 'main' is listed twice",
                                     "duplicate definition of ipAddressPools")),
    ("duplicate-selector", pool("main", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2}
        spec:
          nodeSelectors:
            - matchLabels: {zone: a}
            - matchLabels: {zone: a}
        """), Severity.WARNING, 14, ("L2Advertisement/l2", "spec.nodeSelectors[1]: the same selector as "
                                     "spec.nodeSelectors[0]", "duplicate definition of nodeSelectors")),
    ("duplicate-match-expression", pool("main", "10.0.0.0/24") + "  serviceAllocation:\n    serviceSelectors:\n"
     "      - matchExpressions:\n          - {key: tier, operator: In, values: [a, b]}\n"
     "          - {key: tier, operator: In, values: [b, a]}\n" + L2_ALL, Severity.WARNING, 11,
     ("IPAddressPool/main", "spec.serviceAllocation.serviceSelectors[0].matchExpressions[1]: the same match "
      "expression as spec.serviceAllocation.serviceSelectors[0].matchExpressions[0]",
      "duplicate definition of match expressions")),
    ("duplicate-match-value", pool("main", "10.0.0.0/24") + "  serviceAllocation:\n    namespaceSelectors:\n"
     "      - matchExpressions:\n          - key: env\n            operator: In\n            values: [prod, prod]\n"
     + L2_ALL, Severity.WARNING, 12,
     ("spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].values[1]: 'prod' is listed twice",
      "duplicate definition of match expression value in label selector")),
    ("duplicate-community", pool("main", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: b}
        spec:
          communities: ["65535:65282", "65535:65282"]
        """), Severity.WARNING, 12, ("BGPAdvertisement/b", "spec.communities[1]: '65535:65282' is listed twice",
                                     "duplicate definition of community")),
    ("pool-outside-metallb-namespace", pool("p", "10.0.0.0/24").replace("{name: p}", "{name: p, namespace: other}")
     + L2_ALL, Severity.WARNING, 3, ("IPAddressPool/p", "metadata.namespace is 'other'", "MetalLB's webhook refuses")),
    ("bad-prefix", pool("p", "10.0.0.0/40") + L2_ALL, Severity.ERROR, 6, ("'10.0.0.0/40' is not a valid CIDR",)),
    ("not-an-ip", pool("p", "10.0.0.300") + L2_ALL, Severity.ERROR, 6, ("'10.0.0.300' is not an IP address",)),
    ("reversed-range", pool("p", "10.0.0.9-10.0.0.1") + L2_ALL, Severity.ERROR, 6,
     ("range '10.0.0.9-10.0.0.1' is reversed", "write 10.0.0.1-10.0.0.9")),
    ("mixed-family", pool("p", "10.0.0.1-fd00::1") + L2_ALL, Severity.ERROR, 6,
     ("'10.0.0.1-fd00::1' mixes IPv4 and IPv6",)),
    ("overlap-within-pool", pool("p", "10.0.0.0/24", "10.0.0.10-10.0.0.20") + L2_ALL, Severity.ERROR, 7,
     ("IPAddressPool/p", "'10.0.0.10-10.0.0.20' overlaps entry '10.0.0.0/24' of the same pool", "c.yaml:6",
      "on 10.0.0.10-10.0.0.20")),
    ("overlap-across-pools", pool("a", "10.0.0.0/24") + "---\n" + pool("b", "fd00::/64", "10.0.0.255") + L2_ALL,
     Severity.ERROR, 14, ("IPAddressPool/b", "'10.0.0.255' overlaps IPAddressPool/a entry '10.0.0.0/24'",
                          "c.yaml:6")),
    ("duplicate-name", pool("p", "10.0.0.0/24") + "---\n" + pool("p", "10.0.1.0/24") + L2_ALL, Severity.ERROR, 8,
     ("IPAddressPool/p", "a second IPAddressPool named 'p'", "c.yaml:1)")),
    ("wrong-type", pool("p", "10.0.0.0/24") + "  autoAssign: \"yes\"\n" + L2_ALL, Severity.ERROR, 7,
     ('spec.autoAssign: expected true or false, got "yes"',)),
    ("bad-operator", pool("p", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2}
        spec:
          nodeSelectors:
            - matchExpressions:
                - key: zone
                  operator: Equals
                  values: [a]
        """), Severity.ERROR, 15,
     ("L2Advertisement/l2", 'spec.nodeSelectors[0].matchExpressions[0].operator: unknown operator "Equals"',
      "use one of In, NotIn, Exists, DoesNotExist")),
    ("in-without-values", pool("p", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2}
        spec:
          nodeSelectors:
            - matchExpressions:
                - {key: zone, operator: In}
        """), Severity.ERROR, 14, ("operator In on 'zone' needs at least one value",)),
    ("service-bad-ip", pool("p", "10.0.0.0/24") + L2_ALL + service("loadBalancerIP: 10.0.0.999"), Severity.ERROR,
     19, ("Service/default/s", 'spec.loadBalancerIP: "10.0.0.999" is not an IP address')),
    ("service-bad-annotation-ip", pool("p", "10.0.0.0/24") + L2_ALL
     + service("ports: [{port: 80}]", annotations="metallb.io/loadBalancerIPs: 10.0.0.5,nope"), Severity.ERROR, 18,
     ('annotation metallb.io/loadBalancerIPs: "nope" is not an IP address',)),
    ("service-both-ip-fields", pool("p", "10.0.0.0/24") + L2_ALL
     + service("loadBalancerIP: 10.0.0.5", annotations="metallb.io/loadBalancerIPs: 10.0.0.6"), Severity.ERROR, 21,
     ("both spec.loadBalancerIP (10.0.0.5) and annotation metallb.io/loadBalancerIPs (10.0.0.6)",
      "keep only the annotation")),
    ("aggregation-out-of-range", pool("p", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: b}
        spec:
          aggregationLength: 33
        """), Severity.ERROR, 12, ("spec.aggregationLength: 33 is out of range; use a value between 1 and 32",)),
    ("aggregation-shorter-than-prefix", pool("p", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: BGPAdvertisement
        metadata: {name: b}
        spec:
          aggregationLength: 16
        """), Severity.ERROR, 12, ("spec.aggregationLength 16 is shorter than prefix /24 of pool 'p'",
                                   "use at least 24")),
    ("l2-names-missing-pool", pool("main", "10.0.0.0/24") + textwrap.dedent("""\
        ---
        apiVersion: metallb.io/v1beta1
        kind: L2Advertisement
        metadata: {name: l2}
        spec:
          ipAddressPools: [main, mian]
        """), Severity.WARNING, 12, ("L2Advertisement/l2", "names pool 'mian', which does not exist",
                                     "did you mean 'main'?")),
    ("pool-not-announced", pool("lonely", "10.0.0.0/24"), Severity.WARNING, 1,
     ("IPAddressPool/lonely", "no L2Advertisement or BGPAdvertisement covers pool 'lonely'",
      "assigned but never announced")),
    ("service-ip-in-no-pool", pool("p", "10.0.0.0/24") + L2_ALL + service("loadBalancerIP: 10.9.9.9"),
     Severity.WARNING, 19, ("Service/default/s", "requested IP 10.9.9.9 is in no pool (p: 10.0.0.0/24)")),
    ("service-pool-missing", pool("p", "10.0.0.0/24") + L2_ALL
     + service("ports: [{port: 80}]", annotations="metallb.io/address-pool: gold"), Severity.WARNING, 18,
     ("annotation metallb.io/address-pool names pool 'gold', which does not exist",)),
    ("ipv4-mapped-ipv6", pool("p", "::ffff:10.0.0.1") + L2_ALL, Severity.ERROR, 6,
     ("'::ffff:10.0.0.1' is not an IP address", "write 10.0.0.1")),
    ("service-only-manual-pools", pool("p", "10.0.0.0/24") + "  autoAssign: false\n" + L2_ALL
     + service("ports: [{port: 80}]"), Severity.WARNING, 13,
     ("no pool can give it an IPv4 address (p: autoAssign is false)", "metallb.io/address-pool")),
    ("service-excluded-by-service-allocation", pool("p", "10.0.0.0/24")
     + "  serviceAllocation:\n    namespaces: [prod]\n" + L2_ALL + service("ports: [{port: 80}]"),
     Severity.WARNING, 14, ("serviceAllocation of p excludes namespace 'default'",)),
    ("service-ip-avoided-as-buggy", pool("p", "10.0.0.0/24") + "  avoidBuggyIPs: true\n" + L2_ALL
     + service("loadBalancerIP: 10.0.0.255"), Severity.WARNING, 20,
     ("requested IP 10.0.0.255 ends in .0 or .255 and pool 'p' sets avoidBuggyIPs",)),
    ("service-no-pool-of-family", pool("p", "10.0.0.0/24") + L2_ALL + service("ipFamilies: [IPv6]"),
     Severity.WARNING, 12, ("no pool can give it an IPv6 address (no pool has IPv6 addresses)",)),
]


@pytest.mark.parametrize(("text", "severity", "line", "fragments"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_each_problem_names_file_line_and_value(
    tmp_path: Path, text: str, severity: Severity, line: int, fragments: tuple[str, ...]
) -> None:
    diagnostics = check(tmp_path, text)
    matching = [d for d in diagnostics if all(f in str(d) for f in fragments)]
    assert matching, "\n".join(str(d) for d in diagnostics)
    (found,) = matching
    assert found.severity is severity
    assert str(found).startswith(f"{tmp_path / 'c.yaml'}:{line}: "), str(found)


def test_errors_make_the_config_none_warnings_do_not(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(pool("lonely", "10.0.0.0/24"))
    config, diagnostics = load_config_files([str(path)])
    assert config is not None and [d.severity for d in diagnostics] == [Severity.WARNING]
    path.write_text(pool("bad", "10.0.0.1/40"))
    config, _ = load_config_files([str(path)])
    assert config is None


def test_valid_configs_have_no_diagnostics(tmp_path: Path) -> None:
    text = pool("p", "10.0.0.0/24", "fd00::/120") + L2_ALL + service("loadBalancerIP: 10.0.0.5")
    assert check(tmp_path, text) == []


def test_adjacent_ranges_do_not_overlap(tmp_path: Path) -> None:
    text = pool("a", "10.0.0.0/25") + "---\n" + pool("b", "10.0.0.128-10.0.0.255") + L2_ALL
    assert check(tmp_path, text) == []


def test_huge_pools_validate_without_enumerating(tmp_path: Path) -> None:
    text = pool("big", "10.0.0.0/8", "fd00::/48") + "---\n" + pool("huge", "fd00:1::/64") + L2_ALL
    assert check(tmp_path, text) == []


def test_plugin_validators_run_on_a_valid_config_only(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(pool("p", "10.0.0.0/24") + L2_ALL)
    seen: list[int] = []

    def validator(config: object) -> list[Diagnostic]:
        seen.append(1)
        from supervisor.config.diagnostics import error
        from supervisor.config.model import API_SOURCE
        return [error(API_SOURCE, "Plugin", "x", "plugin says no")]

    config, diagnostics = load_config_files([str(path)], validators=[validator])
    assert config is None and seen == [1] and "plugin says no" in str(diagnostics[-1])
    path.write_text(pool("p", "10.0.0.1/40"))
    load_config_files([str(path)], validators=[validator])
    assert seen == [1]
