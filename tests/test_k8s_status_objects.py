"""ServiceL2Status, ConfigurationState and the speaker's Events, from the announcers' real state, in the fake API."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from supervisor.announcing.api import AnnounceFailure, Announcement, AnnouncerState, announcer_state
from supervisor.config.diagnostics import Diagnostic, error
from supervisor.config.model import API_SOURCE, ServiceKey
from supervisor.config.parsing import parse_objects
from supervisor.kubernetes.client import RawClient
from supervisor.kubernetes.confstate import ConfigStateWriter, configuration_state
from supervisor.kubernetes.events import EventRecorder
from supervisor.kubernetes.l2status import L2StatusWriter, wanted_statuses
from supervisor.kubernetes.speaker import AnnouncementReporter
from tests.fakeapi import FakeApiServer
from tests.fakeapi.kube import events_for, service
from tests.runtime_helpers import wait_for

NS = "metallb-system"
WEB = ServiceKey(namespace="default", name="web")
DNS = ServiceKey(namespace="default", name="dns")


def config_warning() -> Diagnostic:
    """A warning as parsing writes it for a metallb.io object the config keeps (a CIDR with host bits)."""
    _config, diagnostics = parse_objects([{
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "first-pool", "namespace": NS}, "spec": {"addresses": ["10.0.10.10/24"]}}])  # fmt: skip
    (found,) = diagnostics
    assert not found.is_error and "host bits" in found.message
    return found


def announced(node: str, *entries: tuple[ServiceKey, str, tuple[str, ...]]) -> AnnouncerState:
    return AnnouncerState(protocol="layer2", announcements=tuple(
        Announcement(service=key, ip=ipaddress.ip_address(ip), protocol="layer2", node=node, interfaces=ifs)
        for key, ip, ifs in entries
    ))  # fmt: skip


def statuses(api: FakeApiServer) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    found = []
    for obj in api.list("ServiceL2Status", NS):
        labels, status = obj["metadata"]["labels"], obj.get("status") or {}
        assert obj["metadata"]["name"].startswith("l2-")
        if not status:
            found.append(("(created, status not written yet)", "", "", "", ()))
            continue
        assert (labels["metallb.io/service-namespace"], labels["metallb.io/service-name"]) == (
            status.get("serviceNamespace"), status.get("serviceName"))
        found.append((labels["metallb.io/node"], status["node"], status["serviceNamespace"], status["serviceName"],
                      tuple(i["name"] for i in status.get("interfaces") or [])))
    return sorted(found)


def test_the_announcer_state_is_read_from_the_status_payload_and_bad_entries_are_skipped() -> None:
    payload = {
        "announcements": [{"service": "default/web", "ip": "10.0.0.1", "protocol": "layer2", "node": "n1",
                           "interfaces": ["eth0"]}, {"service": "nonsense", "ip": "x"}],
        "failures": [{"service": "default/dns", "ip": "fd00::1", "node": "n1", "reason": "no interface"}],
    }  # fmt: skip
    state = announcer_state("layer2", payload)
    assert state.announcements == (Announcement(service=WEB, ip=ipaddress.ip_address("10.0.0.1"), protocol="layer2",
                                                node="n1", interfaces=("eth0",)),)  # fmt: skip
    assert state.failures == (AnnounceFailure(service=DNS, ip=ipaddress.ip_address("fd00::1"), protocol="layer2",
                                              node="n1", reason="no interface"),)  # fmt: skip


def test_the_host_passes_the_real_state_on_only_when_it_changes() -> None:
    from supervisor.announcing.api import AnnouncerView
    from supervisor.announcing.host import HostCore
    from supervisor.config.model import Config
    from supervisor.messages import AnnouncementsChanged, StatusReport, ViewChanged

    class Plugin:
        protocol = "layer2"
        payload: dict[str, Any] = {"announcements": [], "counter": 0}

        def start(self) -> None: ...
        def update(self, view: Any) -> None: ...
        def tick(self, now: float) -> None: ...
        def stop(self, *, handover: bool) -> None: ...

        def status(self) -> dict[str, Any]:
            return self.payload

    plugin = Plugin()
    core = HostCore(worker="announcer-layer2", announcer=plugin)  # type: ignore[arg-type]
    # Before its first view the plugin's "nothing announced" means "not told yet": not passed on.
    assert [type(m) for m in core.report(force=True)] == [StatusReport]
    first = list(core.handle(ViewChanged(view=AnnouncerView(node_name="n1", mode="kubernetes", config=Config(),
                                                              assignments=(), members=frozenset({"n1"})))))
    assert [type(m) for m in first] == [StatusReport, AnnouncementsChanged]
    plugin.payload = {"announcements": [], "counter": 1}  # a counter moved: status yes, state no
    assert [type(m) for m in core.tick(0.0)] == [StatusReport]
    plugin.payload = {"announcements": [{"service": "default/web", "ip": "10.0.0.1", "node": "n1"}], "counter": 1}
    changed = [m for m in core.tick(0.1) if isinstance(m, AnnouncementsChanged)]
    assert [str(a.service) for a in changed[0].state.announcements] == ["default/web"]


def test_a_restarted_speaker_watcher_gets_each_announcers_last_state_back() -> None:
    from supervisor.messages import AnnouncementsChanged
    from supervisor.supervising.state import WATCHER, RoutedState

    message = AnnouncementsChanged(worker="announcer-layer2", state=announced("n1", (WEB, "10.0.0.1", ("eth0",))))
    speaker = RoutedState(node_name="n1", mode="kubernetes", announced={"announcer-layer2": message})
    assert speaker.replay(WATCHER) == [message]
    assert RoutedState(node_name="n1", mode="standalone", announced={"announcer-layer2": message}).replay(WATCHER) == []


def test_node_assigned_and_announce_failed_come_from_the_announcers_state_once(api: FakeApiServer,
                                                                              client: RawClient) -> None:  # fmt: skip
    api.create(service("web"))
    reporter = AnnouncementReporter(EventRecorder(client, component="metallb-speaker", host="n1"), "n1")

    def lookup(key: ServiceKey) -> dict[str, Any]:
        return api.get("Service", key.namespace, key.name)

    state = announced("n1", (WEB, "10.0.10.10", ("eth0",)))
    assert reporter.update([state], lookup) == (1, True)
    assert reporter.update([state], lookup) == (0, True)  # a second reconcile says nothing
    failed = AnnouncerState(protocol="layer2", failures=(AnnounceFailure(
        service=WEB, ip=ipaddress.ip_address("10.0.10.10"), protocol="layer2", node="n1", reason="no interface"),))
    assert reporter.update([failed], lookup) == (1, True)
    assert reporter.update([state], lookup) == (1, True)  # announcing again (an interface came up) is news
    assert sorted((e["type"], e["reason"], e["message"], e.get("count")) for e in events_for(api, "web")) == [
        ("Normal", "nodeAssigned", 'announcing from node "n1" with protocol "layer2"', 2),
        ("Warning", "announceFailed", 'the interfaces specified by LB IP "10.0.10.10" doesn\'t exist in assigned '
         'node "n1" with protocol "layer2"', 1),
    ]  # fmt: skip


def test_node_assigned_that_failed_in_an_outage_is_written_once_the_api_is_back(api: FakeApiServer,
                                                                                client: RawClient) -> None:  # fmt: skip
    svc = api.create(service("web"))
    reporter = AnnouncementReporter(EventRecorder(client, component="metallb-speaker", host="n1"), "n1")
    state = announced("n1", (WEB, "10.0.10.10", ("eth0",)))
    with api.outage("503"):
        assert reporter.update([state], lambda key: svc) == (0, False)
    assert reporter.update([state], lambda key: svc) == (1, True)
    assert reporter.update([state], lambda key: svc) == (0, True)
    assert [e["reason"] for e in api.list("Event", "default")] == ["nodeAssigned"]


def test_service_l2_status_follows_what_this_node_announces_on_change_only(api: FakeApiServer,
                                                                           client: RawClient) -> None:  # fmt: skip
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "speaker-n1", "namespace": NS}})
    pod = api.get("Pod", NS, "speaker-n1")
    writer = L2StatusWriter(client, namespace=NS, node="n1", owner=lambda: pod)
    state = announced("n1", (WEB, "10.0.10.10", ("eth1", "eth0")), (WEB, "fd00::10", ("eth0",)))
    assert writer.update(wanted_statuses([state]))
    assert statuses(api) == [("n1", "n1", "default", "web", ("eth0", "eth1"))]
    [obj] = api.list("ServiceL2Status", NS)
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-n1",
                                                   "uid": pod["metadata"]["uid"]}]  # fmt: skip
    requests = len(api.requests)
    assert writer.update(wanted_statuses([state]))
    assert len(api.requests) == requests  # unchanged: not even a list
    # Fewer interfaces (a link went away): the status shrinks.
    assert writer.update(wanted_statuses([announced("n1", (WEB, "10.0.10.10", ("eth1",)))]))
    assert statuses(api) == [("n1", "n1", "default", "web", ("eth1",))]
    assert writer.update({})
    assert statuses(api) == []


def test_the_new_announcer_removes_the_dead_nodes_status_and_a_restart_its_own_leftovers(
    api: FakeApiServer, client: RawClient
) -> None:
    n1 = L2StatusWriter(client, namespace=NS, node="n1")
    assert n1.update(wanted_statuses([announced("n1", (WEB, "10.0.10.10", ("eth0",)),
                                                (DNS, "10.0.10.11", ("eth0",)))]))  # fmt: skip
    # n1 dies (its speaker deletes nothing); n2 wins web.
    n2 = L2StatusWriter(client, namespace=NS, node="n2")
    assert n2.update(wanted_statuses([announced("n2", (WEB, "10.0.10.10", ("eth0",)))]))
    assert statuses(api) == [("n1", "n1", "default", "dns", ("eth0",)), ("n2", "n2", "default", "web", ("eth0",))]
    # n1 comes back announcing nothing: its leftover for dns goes.
    assert L2StatusWriter(client, namespace=NS, node="n1").update({})
    assert statuses(api) == [("n2", "n2", "default", "web", ("eth0",))]


def test_service_l2_status_written_in_an_outage_is_written_when_the_api_is_back(
    api: FakeApiServer, client: RawClient
) -> None:
    writer = L2StatusWriter(client, namespace=NS, node="n1")
    wanted = wanted_statuses([announced("n1", (WEB, "10.0.10.10", ("eth0",)))])
    with api.outage("503"):
        assert not writer.update(wanted)
    assert writer.update(wanted)
    assert statuses(api) == [("n1", "n1", "default", "web", ("eth0",))]


def test_configuration_state_of_each_component_as_metallb_names_and_computes_it() -> None:
    unknown = configuration_state("speaker", "n1", errors=None)
    assert (unknown.name, dict(unknown.labels), unknown.result, unknown.conditions) == (
        "speaker-n1", {"metallb.io/component-type": "speaker", "metallb.io/node-name": "n1"}, "Unknown", ())
    valid = configuration_state("controller", "", errors=())
    assert (valid.name, dict(valid.labels), valid.result, valid.error_summary) == (
        "controller", {"metallb.io/component-type": "controller"}, "Valid", "")
    assert [(c.type, c.status, c.reason) for c in valid.conditions] == [
        ("configReconcilerValid", "True", "Reconciled"), ("poolReconcilerValid", "True", "Reconciled")]
    bad_pool = error(API_SOURCE, "IPAddressPool", "first-pool", "spec.addresses: must not be empty")
    bad_ad = error(API_SOURCE, "L2Advertisement", "l2", "spec.interfaces[0]: bad")
    invalid = configuration_state("controller", "", errors=(bad_pool, bad_ad))
    assert invalid.result == "Invalid"
    assert [(c.type, c.status, c.reason, c.message) for c in invalid.conditions] == [
        ("configReconcilerValid", "False", "ConfigurationError", "L2Advertisement/l2: spec.interfaces[0]: bad"),
        ("poolReconcilerValid", "False", "ConfigurationError",
         "IPAddressPool/first-pool: spec.addresses: must not be empty"),
    ]  # fmt: skip
    assert invalid.error_summary == ("L2Advertisement/l2: spec.interfaces[0]: bad\n"
                                     "IPAddressPool/first-pool: spec.addresses: must not be empty")  # fmt: skip
    speaker = configuration_state("speaker", "n1", errors=(bad_pool,))
    assert [(c.type, c.status) for c in speaker.conditions] == [("configReconcilerValid", "False")]
    warned = configuration_state("speaker", "n1", errors=(), warnings=(config_warning(),))
    assert warned.result == "Valid"
    assert [(c.type, c.status, c.reason, c.message) for c in warned.conditions][-1] == (
        "configWarnings", "True", "ConfigurationWarning", f"IPAddressPool/first-pool: {config_warning().message}")


def test_configuration_state_is_created_then_patched_on_change_only(api: FakeApiServer, client: RawClient) -> None:
    writer = ConfigStateWriter(client, namespace=NS)
    assert writer.update(configuration_state("speaker", "n1", errors=()))
    obj = api.get("ConfigurationState", NS, "speaker-n1")
    assert obj["metadata"]["labels"] == {"metallb.io/component-type": "speaker", "metallb.io/node-name": "n1"}
    assert obj["status"]["result"] == "Valid" and "errorSummary" not in obj["status"]
    since = obj["status"]["conditions"][0]["lastTransitionTime"]
    writes = len(api.writes())
    assert writer.update(configuration_state("speaker", "n1", errors=()))
    assert len(api.writes()) == writes
    bad = error(API_SOURCE, "IPAddressPool", "p", "spec.addresses: must not be empty")
    assert writer.update(configuration_state("speaker", "n1", errors=(bad,)))
    status = api.get("ConfigurationState", NS, "speaker-n1")["status"]
    assert (status["result"], status["errorSummary"]) == ("Invalid", "IPAddressPool/p: spec.addresses: must not be "
                                                                     "empty")  # fmt: skip
    # A restarted speaker writing the same verdict keeps the transition time.
    again = ConfigStateWriter(client, namespace=NS)
    assert again.update(configuration_state("speaker", "n1", errors=()))
    assert again.update(configuration_state("speaker", "n1", errors=()))
    assert api.get("ConfigurationState", NS, "speaker-n1")["status"]["result"] == "Valid"
    fresh = ConfigStateWriter(client, namespace=NS)
    assert fresh.update(configuration_state("speaker", "n1", errors=()))
    assert api.get("ConfigurationState", NS, "speaker-n1")["status"]["conditions"][0]["lastTransitionTime"] >= since


def test_the_speaker_worker_writes_its_status_objects_from_routed_announcer_state(api: FakeApiServer) -> None:
    """The whole speaker watcher worker in a thread: config verdict + routed AnnouncementsChanged → API objects."""
    import yaml

    from supervisor.messages import AnnouncementsChanged
    from tests.fakeapi.kube import RUNBOOK_L2, RUNBOOK_POOL, running_speaker_worker

    for obj in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, yaml.safe_load(RUNBOOK_POOL),
                yaml.safe_load(RUNBOOK_L2), service("web")):  # fmt: skip
        api.create(obj)
    api.update_status("Service", "default", "web", {"loadBalancer": {"ingress": [{"ip": "10.0.10.10"}]}})
    # What this node wrote before its speaker restarted.
    before = api.create({"apiVersion": "metallb.io/v1beta1", "kind": "ServiceL2Status",
                         "metadata": {"name": "l2-old", "namespace": NS, "labels": {
                             "metallb.io/node": "n1", "metallb.io/service-name": "web",
                             "metallb.io/service-namespace": "default"}}})  # fmt: skip
    api.update_status("ServiceL2Status", NS, before["metadata"]["name"],
                      {"node": "n1", "serviceName": "web", "serviceNamespace": "default",
                       "interfaces": [{"name": "eth9"}]})

    def result() -> str | None:
        found = [o for o in api.list("ConfigurationState", NS) if o["metadata"]["name"] == "speaker-n1"]
        return (found[0].get("status") or {}).get("result") if found else None

    with running_speaker_worker(api, namespace=NS) as inbox:
        wait_for(lambda: result() == "Valid", what="the speaker's ConfigurationState")
        # The config is read, no announcer has answered yet: what it wrote before stays.
        assert statuses(api) == [("n1", "n1", "default", "web", ("eth9",))]
        assert events_for(api, "web") == []
        inbox.put(AnnouncementsChanged(worker="announcer-layer2",
                                       state=announced("n1", (WEB, "10.0.10.10", ("eth0",)))))  # fmt: skip
        wait_for(lambda: statuses(api) == [("n1", "n1", "default", "web", ("eth0",))], what="the ServiceL2Status")
        assert [o["metadata"]["name"] for o in api.list("ServiceL2Status", NS)] == ["l2-old"]  # patched, not new
        wait_for(lambda: [e["reason"] for e in events_for(api, "web")] == ["nodeAssigned"], what="nodeAssigned")
        inbox.put(AnnouncementsChanged(worker="announcer-layer2", state=AnnouncerState(protocol="layer2")))
        wait_for(lambda: statuses(api) == [], what="the ServiceL2Status deleted once the IP is withdrawn")


def test_what_metalloid_writes_is_valid_against_its_status_crds(api: FakeApiServer, client: RawClient) -> None:
    from tests.deploy_support import admission_errors, find, kustomize

    objects = kustomize(".")
    L2StatusWriter(client, namespace=NS, node="n1").update({WEB: ("eth0", "eth1")})
    bad = error(API_SOURCE, "IPAddressPool", "p", "spec.addresses: must not be empty")
    ConfigStateWriter(client, namespace=NS).update(configuration_state("controller", "", errors=(bad,)))
    ConfigStateWriter(client, namespace=NS).update(configuration_state("speaker", "n1", errors=(),
                                                                       warnings=(config_warning(),)))
    written = [*api.list("ServiceL2Status", NS), *api.list("ConfigurationState", NS)]
    assert len(written) == 3
    for obj in written:
        crd = find(objects, "CustomResourceDefinition", f"{obj['kind'].lower()}es.metallb.io"
                   if obj["kind"] == "ServiceL2Status" else "configurationstates.metallb.io")  # fmt: skip
        shown = {k: v for k, v in obj.items()}
        assert admission_errors(crd, shown) == [], obj


def test_the_leading_controller_writes_its_configuration_state(runbook_api: FakeApiServer) -> None:
    from tests.fakeapi.kube import ingress, pool, running_controller

    runbook_api.create(service("a"))

    def state() -> dict[str, Any]:
        found = [o for o in runbook_api.list("ConfigurationState", NS) if o["metadata"]["name"] == "controller"]
        return (found[0].get("status") or {}) if found else {}

    with running_controller(runbook_api):
        wait_for(lambda: ingress(runbook_api, "a"))
        wait_for(lambda: state().get("result") == "Valid" and [(c["type"], c["status"]) for c in state()[
            "conditions"]] == [("configReconcilerValid", "True"), ("poolReconcilerValid", "True")],
                 what="controller Valid")  # fmt: skip
        runbook_api.create(pool("broken", "10.0.20.0/33"))
        wait_for(lambda: state().get("result") == "Invalid", what="controller Invalid")
        assert state()["errorSummary"].startswith("IPAddressPool/broken: ")
        assert [(c["type"], c["status"], c["reason"]) for c in state()["conditions"]] == [
            ("configReconcilerValid", "True", "Reconciled"), ("poolReconcilerValid", "False", "ConfigurationError")]
    labels = runbook_api.get("ConfigurationState", NS, "controller")["metadata"]["labels"]
    assert labels == {"metallb.io/component-type": "controller"}


def test_a_kept_field_reaches_an_event_and_both_configuration_states(
    runbook_api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field on the kept-but-not-acted-on list, end to end: the controller puts a Warning Event
    ConfigurationWarning on the object and a configWarnings condition on its ConfigurationState,
    the speaker one on its own. The list is replaced by a stand-in entry, so the path stays tested
    whichever fields are listed today (metalloid empties the list as it implements them)."""
    from supervisor.config import kept_fields
    from tests.fakeapi.kube import ingress, running_controller, running_speaker_worker

    stand_in = kept_fields.KeptField(kind="L2Advertisement", path="spec.interfaces",
                                     metallb_effect="(a stand-in entry of this test)")  # fmt: skip
    monkeypatch.setattr(kept_fields, "KEPT_NOT_ACTED_ON", (stand_in,))
    runbook_api.create({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                        "metadata": {"name": "on-eth0", "namespace": NS},
                        "spec": {"ipAddressPools": ["first-pool"], "interfaces": ["eth0"]}})  # fmt: skip
    runbook_api.create(service("a"))

    def warnings_condition(name: str) -> dict[str, Any] | None:
        found = [o for o in runbook_api.list("ConfigurationState", NS) if o["metadata"]["name"] == name]
        conditions = ((found[0].get("status") or {}).get("conditions") or []) if found else []
        return next((c for c in conditions if c["type"] == "configWarnings"), None)

    with running_controller(runbook_api), running_speaker_worker(runbook_api, namespace=NS):
        wait_for(lambda: ingress(runbook_api, "a"))
        warned = wait_for(lambda: events_for(runbook_api, "on-eth0", NS), what="the ConfigurationWarning Event")
        assert [(e["type"], e["reason"], e["involvedObject"]["kind"]) for e in warned] == [
            ("Warning", "ConfigurationWarning", "L2Advertisement")]
        assert "spec.interfaces is kept but metalloid does not act on it" in warned[0]["message"]
        for component in ("controller", "speaker-n1"):
            condition = wait_for(lambda c=component: warnings_condition(c), what=f"{component}'s configWarnings")
            assert condition is not None
            assert (condition["status"], condition["reason"]) == ("True", "ConfigurationWarning")
            assert condition["message"].startswith("L2Advertisement/on-eth0: spec.interfaces is kept but")
        assert events_for(runbook_api, "l2", NS) == []  # the runbook's L2Advertisement sets no listed field


def test_standalone_the_host_keeps_the_real_state_to_itself() -> None:
    # Only the speaker's watcher reads it; standalone, the supervisor would unpickle it for nothing.
    from supervisor.announcing.api import AnnouncerView
    from supervisor.announcing.host import HostCore
    from supervisor.config.model import Config
    from supervisor.messages import StatusReport, ViewChanged

    class Plugin:
        protocol = "layer2"
        payload: dict[str, Any] = {"announcements": [{"service": "default/web", "ip": "10.0.0.1", "node": "n1"}]}

        def start(self) -> None: ...
        def update(self, view: Any) -> None: ...
        def tick(self, now: float) -> None: ...
        def stop(self, *, handover: bool) -> None: ...

        def status(self) -> dict[str, Any]:
            return self.payload

    plugin = Plugin()
    core = HostCore(worker="announcer-layer2", announcer=plugin)  # type: ignore[arg-type]
    view = AnnouncerView(node_name="n1", mode="standalone", config=Config(), assignments=(), members=frozenset({"n1"}))
    assert [type(m) for m in core.handle(ViewChanged(view=view))] == [StatusReport]
    plugin.payload = {"announcements": []}
    assert [type(m) for m in core.tick(0.0)] == [StatusReport]
    # The same host told it is a speaker's passes the state on from its next view.
    kubernetes = ViewChanged(view=AnnouncerView(node_name="n1", mode="kubernetes", config=Config(), assignments=(),
                                                members=frozenset({"n1"})))
    assert [type(m).__name__ for m in core.handle(kubernetes)] == ["StatusReport", "AnnouncementsChanged"]
