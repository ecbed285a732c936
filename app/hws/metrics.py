"""Every Prometheus metric the server exports, defined in one place.

gRPC metrics use the names and labels of go-grpc-prometheus, so existing
Grafana boards and alerts work unchanged; service metrics are prefixed hws_.
"""

from __future__ import annotations

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

# No `_created` twin per counter and histogram: no board or alert reads them, and they doubled the exposition.
prometheus_client.disable_created_metrics()

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0)

GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _GRPC_LABELS)
GRPC_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed on the server, by status code.", (*_GRPC_LABELS, "grpc_code")
)
GRPC_MSG_RECEIVED = Counter("grpc_server_msg_received_total", "Messages received from clients.", _GRPC_LABELS)
GRPC_MSG_SENT = Counter("grpc_server_msg_sent_total", "Messages sent to clients.", _GRPC_LABELS)
GRPC_HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from the start of an RPC to its status (whole stream for streaming RPCs).",
    _GRPC_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)

ACTIVE_STREAMS = Gauge("hws_active_streams", "Streams open now.")
AUDIO_RECEIVED_SECONDS = Counter("hws_audio_received_seconds_total", "Seconds of audio received from clients.")
UTTERANCES = Counter(
    "hws_utterances_total", "Utterances ended, by outcome (transcribed, too_short, tonal, empty).", ("outcome",)
)
# The latency metrics count results sent, the same times as each SpeechResult's `timing` (see the proto).
FINAL_LATENCY = Histogram(
    "hws_final_latency_seconds",
    "From the endpoint (the arrival of the audio that ended an utterance) to its final result sent.",
    buckets=_LATENCY_BUCKETS,
)
PARTIAL_LATENCY = Histogram(
    "hws_partial_latency_seconds",
    "From the arrival of the audio a partial covers (its decode is requested then) to the partial result sent.",
    buckets=_LATENCY_BUCKETS,
)
ENDPOINT_WAIT = Histogram(
    "hws_endpoint_wait_seconds",
    "Finals sent: from the arrival of the utterance's last voiced audio to the endpoint (timing.endpoint_wait_s).",
    buckets=_LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "hws_queue_wait_seconds",
    "Results sent: time waiting for a decode worker after the endpoint or the partial's audio end, by kind "
    "(timing.queue_wait_s).",
    ("kind",),
    buckets=_LATENCY_BUCKETS,
)
DECODE_SECONDS = Histogram(
    "hws_decode_seconds", "Model time of one decode, by kind (partial, final).", ("kind",), buckets=_LATENCY_BUCKETS
)
DECODED_AUDIO_SECONDS = Counter(
    "hws_decoded_audio_seconds_total", "Seconds of audio decoded, by kind; RTF = decode seconds / this.", ("kind",)
)
LANGUAGE_DETECTION_SECONDS = Histogram(
    "hws_language_detection_seconds",
    "Time to detect a decode's language (multilingual model, no language asked for), by kind (partial, final).",
    ("kind",),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
BATCH_SIZE = Histogram(
    "hws_batch_size",
    "Decodes per encoder pass (jobs with equal windows share one).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
)
QUEUE_DEPTH = Gauge("hws_queue_depth", "Decode jobs waiting, by kind.", ("kind",))
SCHEDULER_STREAMS = Gauge(
    "hws_scheduler_streams", "Streams the decode scheduler keeps accounts for: open streams that sent work."
)
PARTIALS_DROPPED = Counter(
    "hws_partials_dropped_total", "Partial decodes dropped because a newer one or the final replaced them."
)
STABLE_TEXT_FINALS = Counter(
    "hws_stable_text_finals_total",
    "Finals of utterances whose partials showed stable text, by whether the final revised it (true, false).",
    ("revised",),
)
FINAL_FLAGS = Counter("hws_final_flags_total", "Quality flags on final results, by flag.", ("flag",))
SPECULATIVE_FINALS = Counter(
    "hws_speculative_finals_total",
    "Finals decoded early, in a pause, on an idle worker: used (the pause was the endpoint) or wasted.",
    ("outcome",),
)
# Every known series from the start, at zero, so that rates and alerts see them before the first event.
for _revised in ("true", "false"):
    STABLE_TEXT_FINALS.labels(revised=_revised)
for _outcome in ("used", "wasted"):
    SPECULATIVE_FINALS.labels(outcome=_outcome)
for _kind in ("partial", "final"):
    QUEUE_WAIT.labels(kind=_kind)
MODEL_LOAD_SECONDS = Gauge("hws_model_load_seconds", "Time the model took to load.")
READY = Gauge("hws_ready", "1 when the model is loaded and the server accepts streams, else 0.")
BUILD_INFO = Gauge(
    "hws_build_info",
    "Version, model, device and compute type of this server.",
    ("version", "model", "device", "compute_type"),
)


def track_gpu_memory(device_index: int = 0) -> bool:
    """Export hws_gpu_memory_used_bytes when NVML can read the GPU; absent otherwise (CPU hosts)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
        pynvml.nvmlDeviceGetMemoryInfo(handle)
    except Exception:  # no driver, no GPU, or no permission: nothing to report
        return False
    gauge = Gauge("hws_gpu_memory_used_bytes", "GPU memory used on the device, read through NVML.")
    gauge.set_function(lambda: float(pynvml.nvmlDeviceGetMemoryInfo(handle).used))
    return True
