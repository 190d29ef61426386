"""`Config.services_by_key` answers exactly as `Config.service`'s scan, for every key."""

from __future__ import annotations

from supervisor.config.model import Config, Service, ServiceKey, Source


def _service(name: str, *, line: int = 1, namespace: str = "default") -> Service:
    return Service(namespace=namespace, name=name, source=Source(file="c.yaml", line=line))


def test_the_first_service_of_a_key_is_found_and_a_missing_one_is_none() -> None:
    services = (*(_service(f"svc-{i}", line=i) for i in range(40)), _service("svc-3", line=99))
    config = Config(services=services)
    index = config.services_by_key()
    duplicate = ServiceKey(namespace="default", name="svc-3")
    assert config.service(duplicate) is index[duplicate] is services[3]  # first wins, both ways
    assert config.service(ServiceKey(namespace="other", name="svc-3")) is None
    assert ServiceKey(namespace="other", name="svc-3") not in index
    assert len(index) == 40
    for s in services[:40]:
        assert index[s.key] is config.service(s.key) is next(x for x in services if x.key == s.key)


def test_each_config_answers_from_its_own_services() -> None:
    old = Config(services=tuple(_service(f"a-{i}") for i in range(30)))
    new = Config(services=tuple(_service(f"b-{i}") for i in range(30)))
    key_a, key_b = ServiceKey(namespace="default", name="a-1"), ServiceKey(namespace="default", name="b-1")
    assert old.services_by_key()[key_a] is old.services[1] and key_b not in old.services_by_key()
    assert new.services_by_key()[key_b] is new.services[1] and key_a not in new.services_by_key()
