"""The server's load as CloudWatch Embedded Metric Format (EMF) lines on stdout.

On ECS the awslogs driver ships stdout to CloudWatch Logs, which extracts the metrics of
every EMF line: the service scales and alarms on them without an agent or a scraper. The
values are read in-process from the Prometheus metrics in `hws.metrics`; the logs go to
stderr, so stdout carries only these lines. One line every `--emf-interval-s` (0: off):

    {"_aws": {"Timestamp": 1764000000000, "CloudWatchMetrics": [{"Namespace": "HWS",
      "Dimensions": [["Service"]], "Metrics": [{"Name": "StreamUtilization", "Unit": "None"}, ...]}]},
     "Service": "hws", "StreamUtilization": 0.25, "ActiveStreams": 4, ...}

Specification: "Specification: Embedded metric format" in the Amazon CloudWatch user guide
(CloudWatch_Embedded_Metric_Format_Specification.html); tests/infra/schemas/emf.schema.json.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections.abc import Callable
from typing import TextIO

from prometheus_client.metrics import MetricWrapperBase

from hws import metrics
from hws.server.settings import Settings

DIMENSION = "Service"
# (name, CloudWatch unit). FinalLatencyP95 is left out of a line whose interval had no final.
ACTIVE_STREAMS = ("ActiveStreams", "Count")
MAX_STREAMS = ("MaxStreams", "Count")
STREAM_UTILIZATION = ("StreamUtilization", "None")
QUEUE_DEPTH = ("QueueDepth", "Count")
FINALS = ("Finals", "Count")
FINAL_LATENCY_P95 = ("FinalLatencyP95", "Seconds")


def samples(metric: MetricWrapperBase, suffix: str = "") -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of a Prometheus metric whose name ends with `suffix`."""
    return [
        (sample.labels, sample.value)
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    ]


def cumulative_buckets(histogram: MetricWrapperBase) -> dict[float, float]:
    """{upper bound: observations at or below it} of an unlabelled histogram, +Inf included."""
    return {float(labels["le"]): value for labels, value in samples(histogram, "_bucket")}


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """The q-quantile of the observations between two bucket readings, as Prometheus's
    histogram_quantile estimates it (linear within a bucket); None when there were none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the highest finite bucket: its bound, as Prometheus does
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


class EmfReporter:
    """Builds one EMF document per call from the live metrics; remembers the last histogram reading."""

    def __init__(self, namespace: str, service: str, max_streams: int, clock: Callable[[], float] = time.time) -> None:
        self.namespace = namespace
        self.service = service
        self.max_streams = max_streams
        self._clock = clock
        self._latency_before = cumulative_buckets(metrics.FINAL_LATENCY)

    def document(self) -> dict[str, object]:
        active = sum(value for _, value in samples(metrics.ACTIVE_STREAMS))
        values: dict[tuple[str, str], float] = {
            ACTIVE_STREAMS: active,
            MAX_STREAMS: self.max_streams,
            STREAM_UTILIZATION: active / self.max_streams,
            QUEUE_DEPTH: sum(value for _, value in samples(metrics.QUEUE_DEPTH)),
        }
        latency_now = cumulative_buckets(metrics.FINAL_LATENCY)
        p95 = quantile(0.95, self._latency_before, latency_now)
        values[FINALS] = latency_now.get(math.inf, 0.0) - self._latency_before.get(math.inf, 0.0)
        if p95 is not None:
            values[FINAL_LATENCY_P95] = round(p95, 4)
        self._latency_before = latency_now
        return {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [[DIMENSION]],
                        "Metrics": [{"Name": name, "Unit": unit} for name, unit in values],
                    }
                ],
            },
            DIMENSION: self.service,
            **{name: value for (name, _), value in values.items()},
        }

    def line(self) -> str:
        return json.dumps(self.document(), separators=(",", ":"))


async def report(reporter: EmfReporter, interval_s: float, out: TextIO = sys.stdout) -> None:
    """Write one line every interval until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        out.write(reporter.line() + "\n")
        out.flush()


def start(settings: Settings) -> asyncio.Task[None] | None:
    """Start reporting on the running loop when --emf-interval-s is set; the caller cancels the task."""
    if settings.emf_interval_s <= 0:
        return None
    reporter = EmfReporter(settings.emf_namespace, settings.emf_service, settings.max_streams)
    return asyncio.create_task(report(reporter, settings.emf_interval_s))
