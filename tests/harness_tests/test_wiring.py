"""The rendered chart's wiring made local (streamwatch_dev.wiring), on a real ``helm template`` render: the
code the chart-driven test run and ``make demo`` start services with."""

from __future__ import annotations

from pathlib import Path

from streamwatch_dev.chart import render
from streamwatch_dev.wiring import (
    infrastructure_hosts,
    local_container,
    local_ports,
    probe_port,
    service_hosts,
)
from streamwatch_dev.workloads import secret_value, service_containers


def test_publisher_and_observer_env_point_at_local_addresses_dirs_and_ports(tmp_path: Path) -> None:
    manifests = render(release="wired")
    (publisher,) = service_containers(manifests, "profile-publisher")
    (observer,) = service_containers(manifests, "observer")
    publisher_ports = local_ports(publisher)
    hosts = {
        **infrastructure_hosts(manifests, "127.0.0.1:19092", {"elasticsearch": "http://127.0.0.1:19200"}),
        **service_hosts(manifests, publisher, publisher_ports),
    }
    assert hosts["wired-streamwatch-kafka-kafka-bootstrap:9092"] == "127.0.0.1:19092"

    pub = local_container(publisher, manifests, hosts, tmp_path, publisher_ports)
    (local_port,) = publisher_ports.values()
    assert pub.command == ["streamwatch-profile-publisher"]
    assert pub.env["PROFILE_PUBLISHER_PORT"] == str(local_port)  # the declared port moved, its env follows
    assert pub.env["PROFILE_PUBLISHER_PUBLIC_URL"] == f"http://127.0.0.1:{local_port}"
    assert pub.env["ELASTICSEARCH_URL"] == "http://127.0.0.1:19200"
    assert probe_port(publisher, publisher_ports) == local_port
    store = Path(pub.env["PROFILE_PUBLISHER_STORE_DIR"])
    assert store.is_dir() and store.is_relative_to(tmp_path / "claims")

    obs = local_container(observer, manifests, hosts, tmp_path)
    assert obs.env["OBSERVER_PROFILE_PUBLISHER_URL"] == f"http://127.0.0.1:{local_port}"
    assert obs.env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    # one Secret, two readers: the token the observer sends is the one the publisher checks
    assert obs.env["OBSERVER_PROFILE_PUBLISHER_TOKEN"] == pub.env["PROFILE_PUBLISHER_TOKEN"]
    ref = observer.env()["OBSERVER_PROFILE_PUBLISHER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert obs.env["OBSERVER_PROFILE_PUBLISHER_TOKEN"] == secret_value(manifests, ref)
    assert "OPS_PORT" not in obs.env  # without ports, the process runner picks a free one
    # no in-cluster address is left (claim directories are named after their claims, so match addresses)
    values = [*pub.env.values(), *obs.env.values()]
    assert not [v for v in values if "http://wired-" in v or "kafka-bootstrap" in v], values
