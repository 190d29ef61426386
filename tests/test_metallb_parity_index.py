"""Every test function of the MetalLB files issue 11 ports is named by a ported test (issue 11).

The lists below are MetalLB's own (`git grep '^func Test'` of each file in
the mirrored MetalLB source). Each ported test names its Go test in its
docstring, and its module names the Go file (`GO`, and the module
docstring): a test removed, renamed or left unnamed fails here.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

# (ported module, MetalLB file, its test functions)
PORTED = [
    ("tests.test_metallb_allocator_parity", "internal/allocator/allocator_test.go",
     ("TestAssignment", "TestPoolAllocation", "TestAllocation", "TestBuggyIPs", "TestConfigReload", "TestAutoAssign",
      "TestPoolCount", "TestPoolMetrics")),
    ("tests.test_metallb_controller_parity", "controller/controller_test.go",
     ("TestControllerMutation", "TestControllerConfig", "TestDeleteRecyclesIP", "TestControllerReassign",
      "TestControllerDualStackConfig")),
    ("tests.test_metallb_layer2_parity", "speaker/layer2_controller_test.go",
     ("TestUsableNodesEPSlicesWithSpeakerlistDisabled", "TestUsableNodesEPSlices", "TestShouldAnnounceEPSlices",
      "TestShouldAnnounceFromNodes", "TestClusterPolicy", "TestL2ServiceSelectors",
      "TestL2SharedIPWithServiceSelectors", "TestL2AdsForService", "TestL2ElectionConsistentButAdsPerNode",
      "TestL2NoMatchingAdForServiceAndNode", "TestL2ServiceSelectorFiltersCandidateNodes", "TestIPAdvertisementFor",
      "TestSortL2Candidates", "TestPreferredScoresFor", "TestShouldAnnouncePreferredNode",
      "TestShouldAnnounceSplitBrainWithMixedAds", "TestShouldAnnouncePreferredNodeFailover")),
    ("tests.test_metallb_layer2_parity", "internal/k8s/epslices", ("TestIsConditionReadyOrServing",)),
]  # fmt: skip


@pytest.mark.parametrize(("module_name", "go_file", "go_tests"), PORTED, ids=[p[1] for p in PORTED])
def test_every_metallb_test_is_ported_and_named(module_name: str, go_file: str, go_tests: tuple[str, ...]) -> None:
    module = importlib.import_module(module_name)
    assert go_file in (module.__doc__ or ""), f"{module_name}'s docstring does not name {go_file}"
    if go_file.endswith(".go"):
        assert go_file == module.GO
    docstrings = " ".join(inspect.getdoc(f) or "" for name, f in inspect.getmembers(module, inspect.isfunction)
                          if name.startswith("test_"))
    unnamed = [t for t in go_tests if not re.search(rf"\b{t}\b", docstrings)]
    assert unnamed == [], f"no test in {module_name} names these tests of {go_file}: {unnamed}"
