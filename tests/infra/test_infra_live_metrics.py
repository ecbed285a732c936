"""The server's metrics as AWS and Prometheus consume them, from a real server under real load.

One server process (`python -m hws.server`, embedded model) runs with CloudWatch EMF lines
on (`--emf-interval-s`), its stdout and stderr kept apart; two clients stream real speech
at real-time pace and one sends a bad request. Then:
- every stdout line is an EMF document valid against tests/infra/schemas/emf.schema.json,
  plus the rules the schema cannot say, and the lines follow the load;
- the Terraform scaling policy and alarms read the metric names and dimension the server writes;
- a real Prometheus (Debian package `prometheus`) scraped the server every second through the
  load with deploy/prometheus/alerts.yml loaded: every Grafana panel query and every alert
  expression returns a series through its HTTP API, and every rule evaluates without error.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from hws.server import emf
from tests.infra.conftest import missing_tool
from tests.infra.promql import Prometheus, with_bool
from tests.support import ROOT, ServerProcess, free_port, stream, stream_clip, streaming_config
from tests.support.fixtures import require_eval_audio

SCHEMA = Path(__file__).resolve().parent / "schemas" / "emf.schema.json"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "hws.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
JOB = "hws"  # the job name the dashboard's $job and the alert rules select
# Exported only where NVML sees a GPU; these machines have none.
GPU_ONLY = {"hws_gpu_memory_used_bytes"}
EMF_INTERVAL_S = 0.5
MAX_STREAMS = 4
CLIPS = ["synth_weather.wav", "synth_meeting.wav"]  # 5.4 s and 6.1 s of speech


class SplitServer(ServerProcess):
    """The real server with stdout (EMF lines) and stderr (logs) in separate files."""

    def start(self, log_dir: Path | None = None, wait: bool = True) -> SplitServer:
        assert log_dir is not None
        self.log_path = log_dir / f"server-{self.port}.err"
        self.stdout_path = log_dir / f"server-{self.port}.out"
        with open(self.log_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.spawn(out, err)
        if wait:
            self.wait_serving()
        return self

    def stdout_lines(self) -> list[str]:
        return self.stdout_path.read_text(encoding="utf-8").splitlines()


@dataclass
class LoadRun:
    server: SplitServer
    prometheus: Prometheus | None
    started: float
    finished: float
    errors: list[BaseException]


def bad_request(address: str) -> None:
    """Audio before config: INVALID_ARGUMENT, so the error series exist."""
    with pytest.raises(grpc.RpcError) as failure:
        stream(address, iter([pb.StreamingTranscribeRequest(audio=b"\0\0" * 160)]), timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def real_time_load(address: str) -> list[BaseException]:
    errors: list[BaseException] = []

    def client(name: str) -> None:
        try:
            stream_clip(address, name, streaming_config(interim_results=True), pace=True)
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(name,)) for name in CLIPS]
    for thread in threads:
        thread.start()
    bad_request(address)
    for thread in threads:
        thread.join(60)
    return errors


@pytest.fixture(scope="module")
def load_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadRun]:
    require_eval_audio()
    args = ["--emf-interval-s", str(EMF_INTERVAL_S), "--max-streams", str(MAX_STREAMS), "--emf-service", "hws-test"]
    workdir = tmp_path_factory.mktemp("live")
    server = SplitServer(args=args).start(workdir)
    binary = Prometheus.find()
    prometheus = None
    try:
        if binary is not None:
            rules = [ALERTS]
            prometheus = Prometheus(binary, free_port()).start(workdir, JOB, f"127.0.0.1:{server.metrics_port}", rules)
        started = time.time()
        errors = real_time_load(server.address)
        finished = time.time()
        # A few more EMF lines and scrapes (1 s) after the load: the last finals and errors counted, rules evaluated.
        time.sleep(3.0)
        yield LoadRun(server, prometheus, started, finished, errors)
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()


def emf_documents(run: LoadRun) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.server.stdout_lines()]


def test_load_ran_without_errors(load_run: LoadRun) -> None:
    assert not load_run.errors, load_run.errors


def test_stdout_is_only_emf_lines_valid_against_the_schema(
    load_run: LoadRun, infra_tool: Callable[..., Any], tmp_path: Path
) -> None:
    lines = load_run.server.stdout_lines()
    assert len(lines) >= (load_run.finished - load_run.started) / EMF_INTERVAL_S / 2, "too few EMF lines"
    documents = [json.loads(line) for line in lines]  # every stdout line is one JSON document
    path = tmp_path / "emf.json"
    path.write_text(json.dumps(documents), encoding="utf-8")
    errors = infra_tool("jsonschema", SCHEMA, path)
    assert errors == [[]] * len(documents), [e for e in errors if e][:3]
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                for key in dimension_set:
                    assert isinstance(document.get(key), str) and 0 < len(document[key]) <= 1024, key
            for metric in directive["Metrics"]:
                value = document.get(metric["Name"])
                values = value if isinstance(value, list) else [value]
                assert 0 < len(values) <= 100, metric["Name"]
                assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in values), metric
        stamp = document["_aws"]["Timestamp"] / 1000
        assert load_run.started - 30 <= stamp <= time.time(), "Timestamp is milliseconds since the epoch"


def test_emf_lines_follow_the_load(load_run: LoadRun) -> None:
    documents = emf_documents(load_run)
    namespaces = {d["Namespace"] for doc in documents for d in doc["_aws"]["CloudWatchMetrics"]}
    assert namespaces == {"HWS"}
    assert {doc["Service"] for doc in documents} == {"hws-test"}
    during = [d for d in documents if load_run.started + 1 <= d["_aws"]["Timestamp"] / 1000 <= load_run.finished - 1]
    assert during, "no line while both streams were open"
    assert max(d["ActiveStreams"] for d in during) == len(CLIPS)
    for doc in documents:
        assert doc["MaxStreams"] == MAX_STREAMS
        assert doc["StreamUtilization"] == doc["ActiveStreams"] / MAX_STREAMS
        assert doc["QueueDepth"] >= 0
    assert documents[-1]["ActiveStreams"] == 0
    # Every final is counted once, in the interval it was sent; p95 only where there were finals.
    assert sum(d["Finals"] for d in documents) >= len(CLIPS)
    with_finals = [d for d in documents if d["Finals"] > 0]
    assert all("FinalLatencyP95" in d and 0 < d["FinalLatencyP95"] < 30 for d in with_finals)
    assert all("FinalLatencyP95" not in d for d in documents if d["Finals"] == 0)


def test_terraform_scales_and_alarms_on_the_metrics_the_server_writes(tf: Any) -> None:
    written = {name for name, _ in (emf.STREAM_UTILIZATION, emf.FINAL_LATENCY_P95)}
    policy = tf.resources("modules/service")["aws_appautoscaling_policy.streams"]
    metric = policy["target_tracking_scaling_policy_configuration"][0]["customized_metric_specification"][0]
    assert metric["metric_name"] == emf.STREAM_UTILIZATION[0] and metric["statistic"] == "Average"
    assert metric["dimensions"][0]["name"] == emf.DIMENSION
    alarms = tf.resources("modules/alarms")
    alarm_metrics = {a.get("metric_name") for a in alarms.values()}
    assert written <= alarm_metrics
    assert all(a["dimensions"] == "${local.emf}" for a in alarms.values() if a.get("metric_name") in written)
    assert tf.parsed["modules/alarms/main.tf"]["locals"][0]["emf"] == {emf.DIMENSION: "${var.metrics_service}"}
    environment = str(tf.parsed["modules/render/main.tf"]["locals"])
    for variable in ("HWS_EMF_INTERVAL_S", "HWS_EMF_NAMESPACE", "HWS_EMF_SERVICE"):
        assert variable in environment, variable


def test_alarms_cover_the_load_balancer_ecs_and_the_server(tf: Any) -> None:
    alarms = tf.resources("modules/alarms")
    metrics = {a.get("metric_name") for a in alarms.values()}
    assert {"UnHealthyHostCount", "HTTPCode_ELB_5XX_Count", "TargetConnectionErrorCount"} <= metrics
    below = alarms["aws_cloudwatch_metric_alarm.running_below_desired"]
    queried = {q["metric"][0]["metric_name"] for q in below["metric_query"] if "metric" in q}
    assert queried == {"DesiredTaskCount", "RunningTaskCount"}
    for name, alarm in alarms.items():
        if name.startswith("aws_cloudwatch_metric_alarm."):
            assert alarm["alarm_actions"] == "${local.actions}" and alarm["ok_actions"] == "${local.actions}", name
    # No alarm_topic_arn: the module creates the topic the alarms notify (issue 24).
    assert tf.variables("modules/alarms")["alarm_topic_arn"]["default"] is None
    assert tf.modules("")["alarms"]["alarm_topic_arn"] == "${var.alarm_topic_arn}"
    assert "aws_sns_topic.this" in alarms


# ---------------------------------------------------------------- Prometheus


@pytest.fixture(scope="module")
def prometheus(load_run: LoadRun) -> Prometheus:
    if load_run.prometheus is None:
        missing_tool("the prometheus server (Debian package prometheus)")
    assert load_run.prometheus is not None
    return load_run.prometheus


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", [])]


def as_grafana_runs_it(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$job", JOB)


def test_with_bool_rewrites_only_the_top_level_comparison() -> None:
    assert with_bool('up{job="hws"} == 0') == 'up{job="hws"} == bool 0'
    assert with_bool("(sum(x) or vector(0)) < 1") == "(sum(x) or vector(0)) < bool 1"
    assert with_bool('max by (k) (q{a!~"b|c", d="e"}) >= 14') == 'max by (k) (q{a!~"b|c", d="e"}) >= bool 14'
    assert with_bool("a / clamp_min(b > 0, 1)") == "a / clamp_min(b > 0, 1)"
    assert with_bool("a > bool 1") == "a > bool 1"


def test_prometheus_scraped_the_server(prometheus: Prometheus) -> None:
    (up,) = prometheus.query(f'up{{job="{JOB}"}}')
    assert up["value"][1] == "1"
    jobs = prometheus.api("label/job/values", **{"match[]": "hws_ready"})
    assert JOB in jobs, "the dashboard's $job variable (label_values(hws_ready, job)) would be empty"


@pytest.mark.parametrize(("title", "expr"), dashboard_queries(), ids=[t for t, _ in dashboard_queries()])
def test_dashboard_query_returns_a_series(prometheus: Prometheus, title: str, expr: str) -> None:
    gpu = sorted(name for name in GPU_ONLY if name in expr)
    if gpu:
        pytest.skip(f"GPU-only series {gpu}: exported only where NVML sees a GPU, and this machine has none")
    result = prometheus.query(as_grafana_runs_it(expr))
    assert result, f"{title}: {expr} returned no series"


def test_alert_rules_evaluate_and_their_expressions_return_series(prometheus: Prometheus) -> None:
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 9 and {g["file"] for g in groups} == {str(ALERTS)}
    empty = []
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        if any(name in rule["query"] for name in GPU_ONLY):
            continue
        if not prometheus.query(with_bool(rule["query"])):
            empty.append(f"{rule['name']}: {rule['query']}")
    assert not empty, "alert expressions without data:\n" + "\n".join(empty)
