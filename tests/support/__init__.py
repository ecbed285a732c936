"""The test-and-benchmark harness: the tests and scripts/ (through scripts/benchlib) share every piece of it.

- the real server as a process (`ServerProcess`): free ports, its log and the problems in it, the wait
  until it is SERVING, its CPU time, its /metrics scraped and parsed;
- the evaluation audio (`EVAL_DIR`): the clips' manifest, the real recordings' manifest, clips decoded
  to float32 or LINEAR16, recordings joined with pauses into one stream;
- word error rates with substitutions, deletions and insertions after Whisper's English normaliser, and
  runs of words a transcript says twice;
- offline faster-whisper on the same model: as a user runs it, and with the server's final settings;
- streaming over real gRPC;
- a fake backend for the scheduler (no model).

Only the standard library and numpy are imported by this package at load: scripts/bench_whisperlive.py runs in
WhisperLive's own venv, which has neither gRPC nor jiwer. Everything else is imported where it is used.

It imports nothing from scripts/. Each part is a module (paths, server, audio, scoring, offline, streaming,
fake_backend, g711; fixtures for the conftests); the names below are re-exported from them.
"""

from tests.support.audio import (
    PAUSE_MARGIN_S,
    RATE,
    JoinedSpeech,
    chunked,
    clip_audio,
    clip_pcm16,
    from_pcm16,
    join_recordings,
    manifest,
    real_audio,
    real_manifest,
    to_pcm16,
)
from tests.support.fake_backend import FakeBackend
from tests.support.offline import (
    CLIP_OFFLINE_OPTIONS,
    OFFLINE_VARIANTS,
    offline_model,
    offline_transcript,
    transcribe,
)
from tests.support.paths import EVAL_DIR, REAL_DIR, ROOT, eval_audio_missing
from tests.support.scoring import (
    Errors,
    corpus_errors,
    corpus_wer,
    errors,
    normalize,
    repeated_runs,
    wer,
)
from tests.support.server import (
    MetricsDelta,
    Samples,
    ServerProcess,
    free_port,
    metric_value,
    proc_cpu_seconds,
)
from tests.support.streaming import (
    STREAMING_CALL_LABELS,
    expected_utterances,
    final_text,
    finals,
    requests,
    stream,
    stream_clip,
    streaming_config,
)

__all__ = [
    "CLIP_OFFLINE_OPTIONS",
    "EVAL_DIR",
    "OFFLINE_VARIANTS",
    "PAUSE_MARGIN_S",
    "RATE",
    "REAL_DIR",
    "ROOT",
    "STREAMING_CALL_LABELS",
    "Errors",
    "FakeBackend",
    "JoinedSpeech",
    "MetricsDelta",
    "Samples",
    "ServerProcess",
    "chunked",
    "clip_audio",
    "clip_pcm16",
    "corpus_errors",
    "corpus_wer",
    "errors",
    "eval_audio_missing",
    "expected_utterances",
    "final_text",
    "finals",
    "free_port",
    "from_pcm16",
    "join_recordings",
    "manifest",
    "metric_value",
    "normalize",
    "offline_model",
    "offline_transcript",
    "proc_cpu_seconds",
    "real_audio",
    "real_manifest",
    "repeated_runs",
    "requests",
    "stream",
    "stream_clip",
    "streaming_config",
    "to_pcm16",
    "transcribe",
    "wer",
]
