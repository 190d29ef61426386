"""What keeps each process small: the slim config membership gets, pyroute2 without its package __init__.

The PSS figures themselves are bench/runtime.py's (BENCHMARKS.md); these tests
pin the behaviour the figures rest on.
"""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

from supervisor.config.loading import load_config_files
from supervisor.messages import ConfigLoaded
from supervisor.supervising.state import MEMBERSHIP, RoutedState, for_membership
from tests.runtime_helpers import NODE, config_text

ROOT = Path(__file__).resolve().parents[1]


def _loaded(tmp_path: Path, services: int) -> ConfigLoaded:
    path = tmp_path / "c.yaml"
    path.write_text(config_text(services) + NODE.format(name="n2"))
    config, diagnostics = load_config_files([str(path)])
    assert config is not None, diagnostics
    return ConfigLoaded(generation=1, config=config, origin=str(path), warnings=())


def test_membership_gets_the_nodes_and_settings_without_the_services(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, 200)
    slim = for_membership(loaded)
    assert len(loaded.config.services) == 200
    assert slim.config.services == () and slim.config.endpoint_slices == ()
    assert slim.config.nodes == loaded.config.nodes
    assert slim.config.settings == loaded.config.settings
    assert (slim.generation, slim.origin) == (loaded.generation, loaded.origin)
    assert len(pickle.dumps(slim)) * 10 < len(pickle.dumps(loaded))


def test_a_service_from_the_api_keeps_no_line_tracking_and_one_from_a_file_keeps_its_lines(tmp_path: Path) -> None:
    from supervisor.config.model import field_source
    from supervisor.config.parsing import parse_objects

    from_file = _loaded(tmp_path, 1).config.services[0]
    assert from_file.field_lines and all(line > 0 for _, line in from_file.field_lines)
    api_service = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": "default",
                                "annotations": {"metallb.universe.tf/loadBalancerIPs": "10.0.10.5"}},
                   "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    config, diagnostics = parse_objects([api_service], origin="kubernetes")
    (service,) = config.services
    assert service.field_lines == ()
    # What the lines were for: the source of a field's diagnostic, the object's own in the API's case.
    assert field_source(service.source, service.field_lines, "metadata.annotations.x") == service.source
    assert [d.source for d in diagnostics if "deprecated" in d.message] == [service.source]


def test_a_restarted_membership_worker_is_replayed_the_slim_config(tmp_path: Path) -> None:
    state = RoutedState(node_name="n1")
    routed = state.accept_config(_loaded(tmp_path, 5))
    assert routed is not None
    (replayed,) = state.replay(MEMBERSHIP)
    assert isinstance(replayed, ConfigLoaded)
    assert replayed.config.services == () and replayed.config.nodes == routed.config.nodes


PROBE = """
import sys
from plugins.layer2 import interfaces
links = interfaces.read_links()
print(sorted(m for m in sys.modules if m.startswith("pyroute2")))
print([link.name for link in links if link.index == 1])
import pyroute2
print(pyroute2.IPRoute.__name__)
"""


def test_layer2_loads_only_pyroute2s_codec_and_the_real_package_still_imports() -> None:
    # A fresh interpreter: this test process may have imported pyroute2 already.
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    modules, loopback, iproute = out.stdout.splitlines()
    loaded = ast.literal_eval(modules)
    assert "pyroute2.netlink.rtnl.ifinfmsg" in loaded and "pyroute2.netlink.rtnl.ifaddrmsg" in loaded
    assert "pyroute2" not in loaded, "the stand-in package must not stay in sys.modules"
    for heavy in ("pyroute2.iproute", "pyroute2.ndb.main", "pyroute2.nftables", "pyroute2.ipdb"):
        assert heavy not in loaded
    assert loopback == "['lo']"  # the dump decoded: index 1 is the loopback in every namespace
    assert iproute == "IPRoute"


FORKED = """
import sys
from supervisor.supervising.memory import ChildFailed, in_forked_child

def job():
    import yaml
    return yaml.safe_load("a: [1, 2]"), "yaml" in sys.modules

print(in_forked_child(job), "yaml" in sys.modules)
try:
    in_forked_child(lambda: 1 / 0)
except ChildFailed as exc:
    print("ZeroDivisionError" in str(exc))
"""


def test_a_forked_job_returns_its_answer_and_leaves_its_imports_in_the_child() -> None:
    # A fresh interpreter: this test process has imported PyYAML already.
    out = subprocess.run([sys.executable, "-c", FORKED], cwd=ROOT, capture_output=True, text=True, check=True)
    answer, failed = out.stdout.splitlines()
    assert answer == "({'a': [1, 2]}, True) False"
    assert failed == "True"


def test_metalloid_run_keeps_the_config_parser_out_of_the_supervisor(tmp_path: Path) -> None:
    # The start-up checks parse the config in a forked child; the supervisor itself never imports the parser.
    path = tmp_path / "c.yaml"
    path.write_text(config_text(3))
    probe = f"""
import sys
import supervisor.supervising.serving as serving
seen = []
def serve(command, specs, settings, **kw):
    parser = sorted(m for m in sys.modules if m == "yaml" or m.startswith("supervisor.config."))
    seen.append(([s.name for s in specs], settings.version, parser))
    return 0
serving.serve_supervisor = serve
from supervisor.cli import main
code = main(["run", "--config", {str(path)!r}, "--node", "n1", "--state-dir", {str(tmp_path / "state")!r},
             "--announcers", "layer2"])
print(code, seen)
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    code, seen = out.stdout.split(" ", 1)
    assert code == "0"
    ((names, version, modules),) = ast.literal_eval(seen)
    assert names == ["watcher", "allocator", "membership", "announcer-layer2"]
    assert version
    parser = {"yaml", "supervisor.config.loading", "supervisor.config.parsing", "supervisor.config.validation",
              "supervisor.config.documents"}
    assert "supervisor.config.model" in modules and not parser & set(modules), modules


REGISTRY_PROBE = """
import sys
from plugins.layer2 import plugin
from supervisor.api import AnnouncerRegistry
registry = AnnouncerRegistry()
plugin.metalloid_register_announcers(registry)
print(registry.names(), "plugins.layer2.announcer" in sys.modules)
from tests.fakes import RecordingHost
announcer = registry.get("layer2")(RecordingHost(node="n1"))
print(type(announcer).__module__, type(announcer).__name__)
"""


def test_the_layer2_plugin_registers_without_importing_its_announcer_until_one_is_built() -> None:
    # The watchers load every plugin for its validators; only the announcer process builds one.
    out = subprocess.run([sys.executable, "-c", REGISTRY_PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    registered, built = out.stdout.splitlines()
    assert registered == "('layer2',) False"
    assert built == "plugins.layer2.announcer Layer2Announcer"


FORKED_LATER = """
import os, sys
from supervisor.supervising.memory import ForkedJob

def job():
    import yaml
    return os.getpid(), "yaml" in sys.modules

pending = ForkedJob(job)
import json  # this process works meanwhile
child, child_has_yaml = pending.result()
print(child != os.getpid(), child_has_yaml, "yaml" in sys.modules)
"""


def test_a_forked_job_runs_while_its_parent_works_and_answers_later() -> None:
    out = subprocess.run([sys.executable, "-c", FORKED_LATER], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


PROMETHEUS_PROBE = """
import sys
from supervisor.serving.metrics import MetricsRegistry
loaded = sorted(m for m in sys.modules if m.startswith("prometheus_client"))
text = MetricsRegistry().render()[0].decode()
import prometheus_client
print(loaded)
print("metallb_k8s_client_updates_total" in text, "process_cpu_seconds_total" in text,
      prometheus_client.Counter.__name__)
"""


def test_the_supervisor_loads_only_the_prometheus_client_modules_it_uses_and_the_package_still_imports() -> None:
    # A fresh interpreter: this test process may have imported prometheus_client already.
    out = subprocess.run([sys.executable, "-c", PROMETHEUS_PROBE], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    modules, rendered = out.stdout.splitlines()
    loaded = ast.literal_eval(modules)
    assert "prometheus_client" not in loaded, "the stand-in package must not stay in sys.modules"
    assert "prometheus_client.registry" in loaded and "prometheus_client.process_collector" in loaded
    for heavy in ("prometheus_client.exposition", "prometheus_client.metrics", "prometheus_client.gc_collector"):
        assert heavy not in loaded
    assert rendered == "True True Counter"  # MetalLB's families and the process metrics render


HEAPS = """
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.open_memstream.restype = ctypes.c_void_p
libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]

def heaps_with_threads(n=4):
    # n threads alive at once, each with a C allocation of its own: glibc gives each its arena when allowed.
    ready, done, kept = threading.Barrier(n + 1), threading.Event(), []
    def grab():
        kept.append(libc.malloc(4096))
        ready.wait()
        done.wait()
    threads = [threading.Thread(target=grab) for _ in range(n)]
    for t in threads:
        t.start()
    ready.wait()
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    done.set()
    for t in threads:
        t.join()
    return buf.value.decode().count("<heap nr=")
"""

TUNED = HEAPS + """
from supervisor.supervising.memory import tune_malloc
if sys.argv[1] == "tuned":
    print(tune_malloc())
print(heaps_with_threads())
"""


def test_tune_malloc_keeps_every_thread_on_one_heap() -> None:
    # Without it (the control) glibc gives concurrent threads arenas of their own: the check can fail.
    runs = {mode: subprocess.run([sys.executable, "-c", TUNED, mode], cwd=ROOT, capture_output=True, text=True,
                                 check=True).stdout.split() for mode in ("default", "tuned")}
    assert int(runs["default"][0]) > 1
    assert runs["tuned"] == ["True", "1"]


WORKER_HEAPS = HEAPS + """
import multiprocessing
from supervisor.supervising.forkserver import START_METHOD, start_forkserver, stop_forkserver

def report(conn):
    conn.send(heaps_with_threads())

if __name__ == "__main__":
    start_forkserver()
    reader, writer = multiprocessing.Pipe(duplex=False)
    worker = multiprocessing.get_context(START_METHOD).Process(target=report, args=(writer,))
    worker.start()
    print(reader.recv(), heaps_with_threads())
    worker.join()
    stop_forkserver()
"""


def test_a_worker_forked_from_the_forkserver_inherits_one_heap(tmp_path: Path) -> None:
    # The forkserver's preload tunes malloc; this (untuned) process is the control.
    script = tmp_path / "worker_heaps.py"
    script.write_text(WORKER_HEAPS)
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker, parent = map(int, out.stdout.split())
    assert worker == 1 and parent > 1


PLUGINS_PROBE = """
import sys
from supervisor.api import AnnouncerRegistry
from supervisor.plugins_loader import build_plugin_manager
pm = build_plugin_manager(strict=True)
registry = AnnouncerRegistry()
pm.hook.metalloid_register_announcers(registry=registry)
print(registry.names())
print(sorted(m for m in sys.modules if m == "yaml" or m.endswith(".announcer") or m.startswith("plugins.bgp.frr")))
from supervisor.plugin_testing import FakeHost
built = [registry.get(name)(FakeHost("n1")) for name in ("bgp", "bgp-stub")]
print([f"{type(a).__module__}.{type(a).__name__}" for a in built])
"""


def test_loading_every_plugin_imports_no_announcer_and_no_yaml_until_one_is_built() -> None:
    # What a watcher (validators) and each announcer process load: every installed plugin, registered.
    out = subprocess.run([sys.executable, "-c", PLUGINS_PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "METALLOID_EXTRA_PLUGINS"})
    names, modules, built = out.stdout.splitlines()
    assert {"bgp", "bgp-stub", "layer2"} <= set(ast.literal_eval(names))
    assert ast.literal_eval(modules) == []
    assert ast.literal_eval(built) == ["plugins.bgp.announcer.BGPAnnouncer",
                                       "plugins.bgp_stub.announcer.BGPStubAnnouncer"]


SPEAKER_SPECS = """
import supervisor.supervising.serving as serving
seen = []
serving.serve_supervisor = lambda command, specs, settings, **kw: seen.extend(specs) or 0
from supervisor.cli import main
main(["speaker", "--node", "n1", "--insecure", "--api-server", "http://127.0.0.1:1"])
print({spec.name: spec.entry for spec in seen})
"""

ALLOCATOR_WORKER = """
import importlib, queue, sys
import supervisor.supervising.preload  # what the forkserver imported before forking the worker
from supervisor.config.model import Config, Service
from supervisor.messages import AllocationDone, ConfigLoaded, Control
from supervisor.supervising.settings import WorkerSettings
module, _, name = sys.argv[1].partition(":")
run = getattr(importlib.import_module(module), name)
inbox, outbox = queue.Queue(), queue.Queue()
inbox.put(ConfigLoaded(generation=3, config=Config(services=(Service(namespace="d", name="s"),)), origin="kubernetes"))
inbox.put(Control.STOP)
run(WorkerSettings(name="allocator", node_name="n1"), inbox, outbox)
done = [m.generation for m in outbox.queue if isinstance(m, AllocationDone)]
print(done, sorted(m for m in sys.modules if m in ("ssl", "http.client") or m.startswith("supervisor.kubernetes.")))
"""


def test_the_speakers_allocator_worker_imports_no_api_client() -> None:
    # It passes on what the watcher read; only the watcher talks to the API server.
    out = subprocess.run([sys.executable, "-c", SPEAKER_SPECS], cwd=ROOT, capture_output=True, text=True, check=True)
    entries = ast.literal_eval(out.stdout.strip())
    assert entries["watcher"] == "supervisor.kubernetes.worker:run"
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_WORKER, entries["allocator"]], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    done, modules = out.stdout.strip().split(" ", 1)
    assert done == "[3]"  # it answered the routed config
    assert ast.literal_eval(modules) == ["supervisor.kubernetes.assignments", "supervisor.kubernetes.status_allocator"]
