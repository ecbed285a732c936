"""docker-compose.gpu.yml against the Compose Specification schema (vendored) + intent."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).resolve().parent / "schemas" / "compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"


@pytest.fixture(scope="module")
def compose(infra_tool: Callable[..., Any]) -> dict[str, Any]:
    result: dict[str, Any] = infra_tool("compose", REPO_ROOT / "docker-compose.gpu.yml", SCHEMA)
    return result


def test_vendored_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_compose_file_matches_compose_spec(compose: dict[str, Any]) -> None:
    assert compose["errors"] == [], "\n".join(compose["errors"])


def test_gpu_reservation(compose: dict[str, Any]) -> None:
    hws = compose["document"]["services"]["hws"]
    devices = hws["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert hws["environment"]["HWS_DEVICE"] == "cuda"


def test_server_hardening_and_health(compose: dict[str, Any]) -> None:
    doc = compose["document"]
    hws = doc["services"]["hws"]
    assert hws["read_only"] is True
    assert "hws-healthcheck" in hws["healthcheck"]["test"]
    assert any(str(v).startswith("model-cache:") for v in hws["volumes"])
    assert "model-cache" in doc["volumes"]
    grace = int(hws["environment"]["HWS_GRACE_PERIOD_S"])
    assert int(str(hws["stop_grace_period"]).rstrip("s")) > grace


def test_prometheus_and_grafana_provisioned_from_repo(compose: dict[str, Any]) -> None:
    services = compose["document"]["services"]
    prom_mounts = " ".join(services["prometheus"]["volumes"])
    graf_mounts = " ".join(services["grafana"]["volumes"])
    assert "./deploy/prometheus:/etc/prometheus" in prom_mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning" in graf_mounts
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in graf_mounts
    for path in [
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/hws.yml",
        "deploy/grafana/dashboards/hws.json",
    ]:
        assert (REPO_ROOT / path).is_file(), path


def test_prometheus_config_scrapes_server_and_loads_rules(infra_tool: Callable[..., Any]) -> None:
    config = infra_tool("yaml", REPO_ROOT / "deploy/prometheus/prometheus.yml")
    assert "alerts.yml" in config["rule_files"]
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert "hws:8000" in targets
    dash_provider = infra_tool("yaml", REPO_ROOT / "deploy/grafana/provisioning/dashboards/hws.yml")
    assert dash_provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_ports_published_on_loopback_only(compose: dict[str, Any]) -> None:
    """Docker-published ports bypass host firewalls: plaintext gRPC, metrics and the UIs stay on 127.0.0.1."""
    for name, service in compose["document"]["services"].items():
        for port in service.get("ports", []):
            host_ip = str(port).rsplit(":", 2)[0] if str(port).count(":") >= 2 else "0.0.0.0"
            loopback = ("127.0.0.1", "${HWS_GRPC_BIND:-127.0.0.1}")
            assert host_ip in loopback, f"{name}: {port} is published on every interface"


def test_metrics_listen_where_prometheus_scrapes_them(compose: dict[str, Any]) -> None:
    """The server's /metrics default is loopback; Prometheus scrapes hws:8000 from its own container."""
    assert compose["document"]["services"]["hws"]["environment"]["HWS_METRICS_HOST"] == "0.0.0.0"


def test_grafana_logs_to_console(compose: dict[str, Any]) -> None:
    grafana = compose["document"]["services"]["grafana"]
    assert grafana["read_only"] is True
    assert grafana["environment"]["GF_LOG_MODE"] == "console", "a read-only Grafana cannot write its file log"
