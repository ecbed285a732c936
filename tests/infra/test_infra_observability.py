"""Dashboard and alert rules versus the server's metrics.

Static part: the Grafana dashboard is valid JSON with the expected panels, and every
metric name it or the alert rules query belongs to the service contract.
Live part: every such name exists in the real /metrics of a running server (fixture
`live_server` from tests/support/fixtures.py, already exercised with one transcribed stream).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "hws.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"

HISTOGRAMS = {
    "grpc_server_handling_seconds",
    "hws_final_latency_seconds",
    "hws_partial_latency_seconds",
    "hws_decode_seconds",
}
COUNTERS = {
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "hws_audio_received_seconds_total",
    "hws_utterances_total",
    "hws_decoded_audio_seconds_total",
    "hws_partials_dropped_total",
    "hws_stable_text_finals_total",
    "hws_final_flags_total",
    "hws_speculative_finals_total",
}
GAUGES = {
    "hws_active_streams",
    "hws_queue_depth",
    "hws_model_load_seconds",
    "hws_ready",
    "hws_build_info",
    "hws_gpu_memory_used_bytes",
}
# The service contract, as sample names (histograms expand to _bucket/_sum/_count).
CONTRACT = COUNTERS | GAUGES | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
# prometheus_client's default collectors.
DEFAULT_PREFIXES = ("process_", "python_")
# Produced by Prometheus itself, never by the server.
SYNTHETIC = {"up"}
# NVML-backed gauge: only exported where the GPU is visible. Tests run without a GPU.
ABSENT_WITHOUT_GPU = {"hws_gpu_memory_used_bytes"}

SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
PREFIXED = re.compile(r"\b((?:hws|grpc_server|process|python)_[a-zA-Z0-9_]+)")
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expressions: Iterable[str]) -> set[str]:
    names: set[str] = set()
    for expr in expressions:
        names.update(SELECTOR.findall(expr))
        names.update(PREFIXED.findall(expr))
        names.update(LABEL_VALUES.findall(expr))
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def dashboard_exprs() -> list[str]:
    data = dashboard()
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", []) if "expr" in t]
    for var in data.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(str(query.get("query", "")))
        elif var.get("type") == "query":
            exprs.append(str(query))
    return exprs


@pytest.fixture(scope="module")
def alert_exprs(infra_tool: Callable[..., Any]) -> list[str]:
    rules = infra_tool("yaml", ALERTS)
    return [str(rule["expr"]) for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def queried(alert_exprs: list[str]) -> set[str]:
    return metric_names(dashboard_exprs() + alert_exprs)


def test_dashboard_is_valid_grafana_json() -> None:
    data = dashboard()
    assert data["uid"] == "hws-overview" and data["title"]
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in data["panels"]:
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_covers_required_panels() -> None:
    exprs = "\n".join(dashboard_exprs())
    titles = " ".join(p["title"].lower() for p in dashboard()["panels"])
    for needle in [
        "hws_active_streams",
        "hws_audio_received_seconds_total",
        "rate(hws_decode_seconds_sum",
        "hws_decoded_audio_seconds_total",
        "histogram_quantile(0.95, sum by (le) (rate(hws_final_latency_seconds_bucket",
        "hws_partial_latency_seconds_bucket",
        "hws_queue_depth",
        "hws_partials_dropped_total",
        "grpc_code",
        "grpc_server_started_total",
        "hws_gpu_memory_used_bytes",
        "hws_model_load_seconds",
        "hws_ready",
    ]:
        assert needle in exprs, needle
    for word in ["real-time factor", "latency", "queue", "gpu memory", "errors"]:
        assert word in titles, word


def test_alert_rules_cover_required_conditions(alert_exprs: list[str]) -> None:
    joined = "\n".join(alert_exprs)
    for needle in [
        "hws_ready",
        "up{",
        "hws_final_latency_seconds_bucket",
        "grpc_server_handled_total",
        "hws_queue_depth",
        "hws_partials_dropped_total",
    ]:
        assert needle in joined, needle


def test_queried_metrics_are_in_the_contract(queried: set[str]) -> None:
    unknown = {n for n in queried if n not in CONTRACT and n not in SYNTHETIC and not n.startswith(DEFAULT_PREFIXES)}
    assert not unknown, f"dashboard/alerts query metrics outside the service contract: {sorted(unknown)}"


def exposed_names(text: str) -> set[str]:
    """Sample names in an exposition, incl. declared families without samples yet."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            if kind == "counter":
                names.update({family, f"{family}_total", f"{family}_created"})
            elif kind == "histogram":
                names.update(f"{family}{s}" for s in ("_bucket", "_sum", "_count", "_created"))
            elif kind == "summary":
                names.update(f"{family}{s}" for s in ("", "_sum", "_count", "_created"))
            else:
                names.add(family)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def test_queried_metrics_exist_on_live_server(request: pytest.FixtureRequest, queried: set[str]) -> None:
    try:
        server = request.getfixturevalue("live_server")
    except pytest.FixtureLookupError:
        pytest.skip("NOT RUN: fixture `live_server` (tests/support/fixtures.py) is not available in this checkout")
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode("utf-8")
    samples = {
        re.split(r"[{\s]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    exposed = exposed_names(text)
    wanted = queried - SYNTHETIC
    missing = sorted(n for n in wanted if n not in exposed and n not in ABSENT_WITHOUT_GPU)
    assert not missing, f"queried by dashboard/alerts but absent from {server.metrics_url}: {missing}"
    # The one stream the fixture ran must have produced real samples, not just declarations.
    for name in ["hws_ready", "hws_active_streams", "grpc_server_started_total", "hws_final_latency_seconds_bucket"]:
        assert name in samples, name
    assert 'outcome="transcribed"' in text
