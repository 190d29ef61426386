"""The runbook's two manifests (shared/seed), exactly as written there, the trailing comment included.

One copy for every test that needs them: the CRD schema tests (they must apply
unchanged), the fake-API controller and speaker tests and the Kubernetes lab.
"""

from __future__ import annotations

RUNBOOK_POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first-pool
  namespace: metallb-system
spec:
  addresses:
    - 10.0.10.10-10.0.10.99 # 90 available IPs
  autoAssign: true
  avoidBuggyIPs: false
"""
RUNBOOK_L2 = """\
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: first-pool
  namespace: metallb-system
spec:
  ipAddressPools:
    - first-pool
"""
