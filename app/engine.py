"""The inference engine: owns the Whisper model and the worker threads that run it.

Knows nothing of gRPC. Streams submit decode jobs and get concurrent futures
back. Scheduling rules:
- `workers` jobs run at once (one per core on a CPU, each on its own
  single-threaded CTranslate2 replica; one on a GPU, which batches instead);
- finals are never dropped; the final of the stream that used the least decode
  time lately runs first (a stream's own finals keep their order), and finals run
  before partials unless the partial's stream used clearly less (see _pick): a
  stream sending faster than real time, or audio that is costly to decode, waits
  for its own work, not others for it;
- a backlogged stream (more than one final queued or running: its audio comes
  faster than it is decoded) runs on the workers left over after one for each open
  stream that keeps up, and always on at least one: a decode cannot be
  interrupted, so the worker a real-time stream's next final needs must not be
  taken by another stream's backlog (see _may_run);
- each stream has at most one queued partial: a newer one replaces it (the
  replaced future resolves to None), and a final from the stream removes it;
  queued partials run least recently served stream first, one per stream at a time;
- a partial resolves to None instead of running when its stream has gone, or
  when it waited longer than `partial_max_age_s` (under overload partials thin
  out while finals keep their place);
- the encoder sees the audio plus a margin of silence, in whole seconds, not
  Whisper's fixed 30 s window (see app/windowed_model.py); finals get a wide
  margin (`encoder_padding_s`), partials a cheap one;
- every decode reads its audio alone, nothing forced: the result of a final
  depends on its audio and the stream's settings only (app/stabilizer.py says
  why); words that no speech supports are dropped (app/quality.py);
- jobs waiting together, from any streams, whose windows are equal share one
  batched encoder pass; each job's decoder then runs through faster-whisper's
  own segment generation with its slice of the encoder output, so batched and
  unbatched decodes take the same path and give the same results.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import enum
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import ctranslate2
import numpy as np
import structlog
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment, TranscriptionOptions, get_ctranslate2_storage, get_suppressed_tokens
from faster_whisper.utils import available_models

from app import embedded_models, metrics, quality
from app.audio import TARGET_RATE
from app.config import Settings, setting_error
from app.stabilizer import word_key
from app.windowed_model import WindowedWhisperModel, encoder_frames

log = structlog.get_logger("hws.engine")


class JobKind(enum.Enum):
    FINAL = "final"
    PARTIAL = "partial"


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None  # None: the model's only language, or detected (see Engine._language)
    prompt: str | None = None
    word_timestamps: bool = False


@dataclasses.dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the decoded audio
    end: float
    probability: float


@dataclasses.dataclass(frozen=True)
class Quality:
    """Whisper's own signals for one decode (see app/quality.py and the proto's ResultQuality)."""

    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    flags: tuple[quality.Flag, ...] = ()


@dataclasses.dataclass(frozen=True)
class DecodeTiming:
    """What one decode cost, as the worker measured it (the proto's ResultTiming is built from it)."""

    queued_s: float  # from the job's submission to its batch's start
    seconds: float  # model time: the job's share of its batch's encoder pass plus its own decode (hws_decode_seconds)
    audio_s: float  # audio the decode read (hws_decoded_audio_seconds_total)
    done_at: float  # time.monotonic() when the decode ended


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    text: str
    words: list[Word]
    confidence: float
    language: str
    language_probability: float
    quality: Quality = dataclasses.field(default_factory=Quality)
    timing: DecodeTiming | None = None  # set by the worker that ran the decode
    misreads_context: bool = False  # heard with context, but not as context (see _misreads_context)


@final  # so that a Context is always true to mypy: `job.context and (...)` is a tuple or None
@dataclasses.dataclass(frozen=True)
class Context:
    """Audio before the utterance that a final hears but does not transcribe (sample counts)."""

    utterance_start: int  # where the utterance begins in the job's audio
    previous_speech_end: int  # where the previous utterance's last voiced frame ends in it


@dataclasses.dataclass
class _Job:
    stream_id: str
    kind: JobKind
    audio: np.ndarray
    options: DecodeOptions
    future: concurrent.futures.Future[DecodeResult | None]
    padding_s: float  # the encoder window's margin of silence after the audio
    context: Context | None = None
    silence_after: int = 0  # samples at the end of `audio` that the VAD heard as silence
    enqueued: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    device: str
    compute_type: str
    multilingual: bool
    languages: tuple[str, ...] = ("en",)  # the codes the model can produce (model_languages)


class EngineNotReady(RuntimeError):
    pass


class DecodeTimeout(RuntimeError):
    """The watchdog gave up on a decode that ran past decode_timeout_s."""


class InjectedFault(RuntimeError):
    """Raised by the fault-injection testing aid, never otherwise."""


FAULT_MARKER = "HWS-FAULT"
# Runaway guard: speech yields about 3-5 tokens a second (timestamps included); a hypothesis looping on
# repeated text (noise, junk hot words, a misleading forced prefix) would otherwise run every fallback
# temperature to Whisper's 448-token limit, many seconds of decoding that hold up every stream.
TOKENS_PER_SECOND = 10
MIN_NEW_TOKENS = 10
# A partial has no timestamp tokens and is only shown: fast speech is about 5 tokens a second. On the
# first second of an utterance, the finals' budget let tiny.en loop ("uh uh uh uh ...") to its end.
PARTIAL_TOKENS_PER_SECOND = 7
PARTIAL_MIN_NEW_TOKENS = 4
WHISPER_MAX_LENGTH = 448
PROMPT_OVERHEAD_TOKENS = 8  # <|startofprev|>, the start-of-transcript sequence, a margin
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CONTEXT_PAD_S = 0.3  # the VAD's pad before and after speech, left out when judging coverage
# Silence after the utterance in the window that detects a final's language when the final is heard with
# context (see Engine._language): on synthesized speech in 19 languages a 3 s margin detected as well as
# 15 s and Whisper's 30 s, at under half the cost of 15 s.
LANGUAGE_PADDING_S = 3.0
# Slack for Whisper's timings when a decode heard with context is split (see _result): they often
# stretch the previous utterance's last word into the silence after it.
CONTEXT_SPLIT_S = 0.25
REREAD_WORDS = 2  # a final heard with context whose words begin as the context's did read it again
NOT_A_WORD = frozenset(" .,!?;:…。，、！？：-–—\"'“”()[]{}¿")  # a "word" of only these is punctuation
USAGE_DECAY_S = 30.0  # how long a stream's decode time counts against it when jobs are ordered
PARTIAL_HANDICAP_S = 5.0  # decode seconds a partial's stream must have used less than a final's to go first


class DeviceUnusable(RuntimeError):
    """The device asked for cannot compute (a GPU without the CUDA libraries CTranslate2 needs): no retry heals it."""


def resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_batch_size(requested: int, device: str) -> int:
    # On a CPU one encoder pass already saturates the cores, so batching gains nothing there
    # (scripts/bench_encoder_window.py; the figures are in the README, Benchmarks).
    if requested:
        return requested
    return 8 if device == "cuda" else 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_workers(requested: int, device: str) -> int:
    """Decodes that run at once. On a CPU, one per core, each on a single-threaded replica.

    A decoder step's operations are too small to share out between threads, so single-threaded
    replicas decoding a job each get more done than one replica on every core (README, Benchmarks,
    gives the figures). A GPU gains from batching instead, with one worker.
    """
    if requested:
        return requested
    return 1 if device == "cuda" else _cores()


def resolve_threads(requested: int, workers: int) -> int:
    return requested or max(1, _cores() // workers)


def resolve_compute_type(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    return "float16" if device == "cuda" else "int8"


def resolve_model_path(model: str, cache_dir: str) -> tuple[str, str]:
    """(display name, what WhisperModel loads): an embedded model, a folder, or a hub name.

    base-embedded is joined into `cache_dir` on its first use and verified on every load.
    """
    if model in embedded_models.NAMES:
        return model, str(embedded_models.model_folder(model, cache_dir))
    if Path(model).is_dir():
        return Path(model).name, model
    return model, model  # a faster-whisper name; WhisperModel downloads it into cache_dir


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # org/name on the Hugging Face hub


def check_model_settings(settings: Settings) -> None:
    """Say at start, with ConfigError naming the flag, what every load would fail on.

    A model folder that does not exist or holds no model, a name faster-whisper does not know, CUDA
    without a CUDA device, a compute type the device cannot run. A hub name is left to the load,
    which retries: a download can heal.
    """
    model = settings.model
    if model in embedded_models.NAMES and (problem := embedded_models.missing_packages(model)) is not None:
        raise setting_error("model", problem)
    named = model in embedded_models.NAMES or model in available_models() or HUB_ID.fullmatch(model) is not None
    if Path(model).is_dir() and not (Path(model) / "model.bin").is_file():
        raise setting_error("model", f"{model} holds no model.bin: not a CTranslate2 model folder")
    if not Path(model).is_dir() and not named:
        raise setting_error(
            "model",
            f"no such folder {model}, and not a model name ({', '.join(available_models())}, or org/name "
            "on the Hugging Face hub)",
        )
    if settings.device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise setting_error("device", "cuda, but CTranslate2 sees no CUDA device here (use auto or cpu)")
    if settings.compute_type not in ("auto", "default"):
        device = resolve_device(settings.device)
        supported = sorted(ctranslate2.get_supported_compute_types(device))
        if settings.compute_type not in supported:
            raise setting_error(
                "compute_type",
                f"{settings.compute_type} does not run on {device} here; use auto or {', '.join(supported)}",
            )


def model_languages(model: WhisperModel) -> tuple[str, ...]:
    """The language codes a model can produce: its language tokens, in token order (an English-only model: en)."""
    if not model.model.is_multilingual:
        return ("en",)
    tokenizer = model.hf_tokenizer
    first = tokenizer.token_to_id("<|startoftranscript|>") + 1
    return tuple(tokenizer.id_to_token(first + i)[2:-2] for i in range(model.model.num_languages))


def _decrement(counter: collections.Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.info: ModelInfo | None = None
        self._model: Any = None
        self._lock = threading.Condition()
        self._finals: collections.deque[_Job] = collections.deque()
        self._partials: dict[str, _Job] = {}  # stream id -> its one queued partial, insertion ordered
        self._partials_running: set[str] = set()  # streams with a partial being decoded
        self._partial_served: dict[str, float] = {}  # stream id -> when its last partial started decoding
        self._usage: dict[str, tuple[float, float]] = {}  # stream id -> (decayed decode seconds, as of when)
        self._open_finals: collections.Counter[str] = collections.Counter()  # stream id -> finals queued or running
        self._taken: collections.Counter[str] = collections.Counter()  # stream id -> its jobs on a worker now
        self._streams: set[str] = set()  # streams that submitted work and have not closed
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.max_batch_size = 1
        self.workers = 1
        self._suppressed_tokens: dict[str, list[int]] = {}
        self._base_options: TranscriptionOptions | None = None
        self._running: dict[int, tuple[float, list[_Job]]] = {}  # worker -> its batch in progress, for the watchdog
        self._stalled: set[int] = set()  # workers whose decode ran past decode_timeout_s
        self.on_stall: Callable[[bool], None] = lambda stalled: None  # called from the watchdog thread

    # -- life cycle -------------------------------------------------------
    def load(self) -> ModelInfo:
        """Load the model (blocking; call from a thread) and start the worker."""
        started = time.monotonic()
        device = resolve_device(self.settings.device)
        compute_type = resolve_compute_type(self.settings.compute_type, device)
        name, path = resolve_model_path(self.settings.model, self.settings.model_cache_dir)
        self.workers = resolve_workers(self.settings.decode_workers, device)
        threads = resolve_threads(self.settings.cpu_threads, self.workers)
        log.info(
            "model_loading",
            model=name,
            path=path,
            device=device,
            compute_type=compute_type,
            workers=self.workers,
            cpu_threads=threads,
        )
        # Temperature fallback samples. CTranslate2 seeds each of its threads' generators once, from this
        # seed, at their first sample: a fresh server given the same jobs in the same order samples the
        # same text, but two decodes of the same audio need not (the generator has moved on).
        ctranslate2.set_random_seed(0)
        self._model = self._open(path, device, compute_type, threads)
        try:
            self._warm_up()
        except RuntimeError as exc:
            # A GPU is visible but CUDA cannot run: CTranslate2 finds its CUDA 12 libraries (cuBLAS)
            # only at the first computation. Chosen automatically, the device falls back to the CPU;
            # asked for, it fails the load, saying why.
            if self.settings.device != "auto" or device != "cuda":
                raise DeviceUnusable(f"{device} cannot run the model here: {exc}") from exc
            log.warning("cuda_unusable", error=str(exc), fallback="cpu")
            device = "cpu"
            compute_type = resolve_compute_type(self.settings.compute_type, device)
            self.workers = resolve_workers(self.settings.decode_workers, device)
            threads = resolve_threads(self.settings.cpu_threads, self.workers)
            self._model = self._open(path, device, compute_type, threads)
        self._base_options = _base_options(self._model)
        multilingual = bool(self._model.model.is_multilingual)
        self.info = ModelInfo(name, path, device, compute_type, multilingual, model_languages(self._model))
        self.max_batch_size = resolve_batch_size(self.settings.max_batch_size, device)
        elapsed = time.monotonic() - started
        metrics.MODEL_LOAD_SECONDS.set(elapsed)
        log.info(
            "model_loaded",
            model=name,
            device=device,
            compute_type=compute_type,
            max_batch_size=self.max_batch_size,
            seconds=round(elapsed, 3),
        )
        self._threads = [
            threading.Thread(target=self._run, name=f"hws-engine-{i}", daemon=True) for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()
        threading.Thread(target=self._watch, name="hws-watchdog", daemon=True).start()
        return self.info

    def _open(self, path: str, device: str, compute_type: str, threads: int) -> WindowedWhisperModel:
        return WindowedWhisperModel(
            path,
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=self.workers,
            download_root=self.settings.model_cache_dir,
        )

    def _warm_up(self) -> None:
        """Encode a second of silence: a device that cannot compute fails here, not on a client's audio."""
        model = self._model
        model.window.padding_s = self.settings.encoder_padding_s  # a final's window, as a client's would be
        model.encode(model.feature_extractor(np.zeros(TARGET_RATE, dtype=np.float32)))

    @property
    def stalled(self) -> bool:
        return bool(self._stalled)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- submission -------------------------------------------------------
    def submit(
        self,
        stream_id: str,
        kind: JobKind,
        audio: np.ndarray,
        options: DecodeOptions,
        context: Context | None = None,
        silence_after: int = 0,
    ) -> concurrent.futures.Future[DecodeResult | None]:
        """Queue a decode of `audio`; for a final, the audio before `context.utterance_start` is only heard.

        No word may start in the last `silence_after` samples, which the VAD heard as silence.
        """
        if self.info is None:
            raise EngineNotReady("the model is not loaded yet")
        final = kind is JobKind.FINAL
        padding_s = self.settings.encoder_padding_s if final else self.settings.partial_encoder_padding_s
        job = _Job(
            stream_id,
            kind,
            audio,
            options,
            concurrent.futures.Future(),
            padding_s,
            context if final else None,
            silence_after,
        )
        with self._lock:
            if self._stopping:
                raise EngineNotReady("the engine is stopping")
            self._streams.add(stream_id)
            if kind is JobKind.FINAL:
                self._drop_partial(stream_id)  # its utterance has ended; the final supersedes it
                self._finals.append(job)
                self._open_finals[stream_id] += 1
            else:
                self._drop_partial(stream_id)
                self._partials[stream_id] = job
            self._update_depth()
            self._lock.notify()
        return job.future

    def has_idle_worker(self) -> bool:
        """Whether a worker would have nothing to do right now."""
        with self._lock:
            return len(self._running) + len(self._finals) + len(self._ready_partials()) < self.workers

    def close_stream(self, stream_id: str) -> None:
        """The stream is gone: its queued partial will never be read."""
        with self._lock:
            self._drop_partial(stream_id)
            self._partial_served.pop(stream_id, None)
            self._usage.pop(stream_id, None)
            self._streams.discard(stream_id)
            self._update_depth()
            self._lock.notify_all()  # the workers it kept for itself are free for backlogs now

    def _drop_partial(self, stream_id: str) -> None:
        old = self._partials.pop(stream_id, None)
        if old is not None:
            old.future.set_result(None)
            metrics.PARTIALS_DROPPED.inc()

    def _update_depth(self) -> None:
        metrics.QUEUE_DEPTH.labels(kind="final").set(len(self._finals))
        metrics.QUEUE_DEPTH.labels(kind="partial").set(len(self._partials))

    # -- worker -----------------------------------------------------------
    def _ready_partials(self) -> list[str]:
        """Streams whose queued partial may run.

        A stream's next partial waits while its last one is decoded: the newer audio supersedes it, and
        another worker serves another stream meanwhile. Ordered least recently served, not first queued
        (see _pick): a stream's partial is replaced every partial interval, so queue order would keep
        sending the busiest streams to the back.
        """
        return [stream_id for stream_id in self._partials if stream_id not in self._partials_running]

    def _runnable(self) -> bool:
        """Whether a queued job may take a worker now (callers hold the lock)."""
        return any(self._may_run(job.stream_id) for job in self._finals) or any(
            self._may_run(stream_id) for stream_id in self._ready_partials()
        )

    def _next_batch(self) -> list[_Job]:
        """Up to max_batch_size jobs, in the order of _pick."""
        with self._lock:
            while not self._runnable() and not self._stopping:
                self._lock.wait()
            wait_s = self.settings.batch_wait_ms / 1000
            if wait_s and not self._stopping and len(self._finals) + len(self._partials) < self.max_batch_size:
                # Wait briefly for company: another stream's job may be about to arrive.
                deadline = time.monotonic() + wait_s
                while len(self._finals) + len(self._partials) < self.max_batch_size and not self._stopping:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
            batch: list[_Job] = []
            now = time.monotonic()
            while len(batch) < self.max_batch_size and (job := self._pick(now)) is not None:
                batch.append(job)
            self._update_depth()
            return batch

    def _pick(self, now: float) -> _Job | None:
        """Take the next job off the queues (callers hold the lock).

        The first queued final of the stream that used the least decode time lately, unless a partial's
        stream used less by more than PARTIAL_HANDICAP_S: among streams of similar use finals go first,
        but a stream flooding the queue with finals does not stop everyone else's partials. Partials of
        the streams within that margin of the lightest go least recently served first. Jobs of
        backlogged streams wait while their share of the workers is taken (_may_run).
        """
        firsts: dict[str, _Job] = {}
        for job in self._finals:
            firsts.setdefault(job.stream_id, job)
        finals = [job for job in firsts.values() if self._may_run(job.stream_id)]
        final = min(finals, key=lambda job: (self._used(job.stream_id, now), job.enqueued), default=None)
        for stream_id in self._ready_partials():
            if now - self._partials[stream_id].enqueued > self.settings.partial_max_age_s:
                self._drop_partial(stream_id)  # stale: the queue cannot keep up
        ready = [stream_id for stream_id in self._ready_partials() if self._may_run(stream_id)]
        if ready:
            light = min(self._used(stream_id, now) for stream_id in ready) + PARTIAL_HANDICAP_S
            stream_id = min(ready, key=lambda s: (self._used(s, now) > light, self._partial_served.get(s, 0.0)))
            if final is None or self._used(stream_id, now) + PARTIAL_HANDICAP_S < self._used(final.stream_id, now):
                self._partials_running.add(stream_id)
                self._partial_served[stream_id] = now
                self._taken[stream_id] += 1
                return self._partials.pop(stream_id)
        if final is not None:
            self._finals.remove(final)
            self._taken[final.stream_id] += 1
        return final

    def _backlogged(self, stream_id: str) -> bool:
        """More than one final queued or running: the stream's audio comes faster than it is decoded."""
        return self._open_finals[stream_id] > 1

    def _may_run(self, stream_id: str) -> bool:
        """Whether a job of this stream may take a worker now (callers hold the lock).

        Backlogged streams together get the workers (batch places, on a GPU) left after one for each
        open stream that keeps up, and at least one. CTranslate2 cannot interrupt a decode: without
        this, a stream sending noise or continuous babble at 50x real time fills every worker with 25 s
        finals, and a real-time stream's next final waits for one of them to end. A lone backlogged
        stream (a file streamed fast) still gets every worker.
        """
        if not self._backlogged(stream_id):
            return True
        keeping_up = sum(1 for s in self._streams if not self._backlogged(s))
        share = max(1, self.workers * self.max_batch_size - keeping_up)  # in jobs: a GPU worker runs batches
        return sum(n for s, n in self._taken.items() if self._backlogged(s)) < share

    def _used(self, stream_id: str, now: float | None = None) -> float:
        """A stream's decode seconds, each weighing less as it ages (time constant USAGE_DECAY_S)."""
        seconds, since = self._usage.get(stream_id, (0.0, 0.0))
        return seconds * math.exp(-((now or time.monotonic()) - since) / USAGE_DECAY_S)

    def _charge(self, stream_id: str, seconds: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._usage[stream_id] = (self._used(stream_id, now) + seconds, now)

    def _done(self, batch: list[_Job]) -> None:
        with self._lock:
            for job in batch:
                _decrement(self._taken, job.stream_id)
                if job.kind is JobKind.PARTIAL:
                    self._partials_running.discard(job.stream_id)
                else:
                    _decrement(self._open_finals, job.stream_id)
            self._lock.notify_all()  # a job that waited for this one may run now

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                if self._stopping:
                    break
                continue
            jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
            try:
                if jobs:
                    self._run_batch(jobs)
            finally:
                self._done(batch)
        # Stopping: nothing queued may hang its stream.
        with self._lock:
            pending = list(self._finals) + list(self._partials.values())
            self._finals.clear()
            self._partials.clear()
        for job in pending:
            _fail(job, EngineNotReady("the engine stopped"))

    def _watch(self) -> None:
        """Fail the streams of a decode that runs too long, and report the engine stalled until it returns.

        CTranslate2 cannot interrupt a decode, so the worker stays busy; health turns
        NOT_SERVING so that the load balancer sends new streams elsewhere and the
        orchestrator can replace the task if the decode never returns.
        """
        limit = self.settings.decode_timeout_s
        while not self._stopping:
            time.sleep(min(1.0, limit / 4))
            for worker, (started, jobs) in list(self._running.items()):
                if worker in self._stalled or time.monotonic() - started <= limit:
                    continue
                log.error(
                    "decode_stalled",
                    seconds=round(time.monotonic() - started, 1),
                    streams=[j.stream_id for j in jobs],
                )
                was_stalled = self.stalled
                self._stalled.add(worker)
                for job in jobs:
                    _fail(job, DecodeTimeout(f"the decode ran longer than {limit:g} s; the server is recovering"))
                if not was_stalled:
                    self.on_stall(True)

    def _run_batch(self, jobs: list[_Job]) -> None:
        started = time.monotonic()
        worker = threading.get_ident()
        self._running[worker] = (started, jobs)
        try:
            self._decode_batch(jobs, started)
        finally:
            del self._running[worker]
            if worker in self._stalled:
                log.info("decode_recovered", seconds=round(time.monotonic() - started, 1))
                self._stalled.discard(worker)
                if not self.stalled:
                    self.on_stall(False)

    def _decode_batch(self, jobs: list[_Job], started: float) -> None:
        try:
            features = [self._model.feature_extractor(job.audio) for job in jobs]
            encoded = self._encode(jobs, features)
        except Exception as exc:  # the batch's streams fail; the worker and other streams go on
            log.exception("encode_failed", streams=[job.stream_id for job in jobs])
            for job in jobs:
                _fail(job, exc)
            return
        encode_s = (time.monotonic() - started) / len(jobs)
        for job, job_features, encoder_output in zip(jobs, features, encoded, strict=True):
            job_started = time.monotonic()
            try:
                result = self._decode(job, job_features, encoder_output)
            except Exception as exc:
                log.exception("decode_failed", stream_id=job.stream_id, kind=job.kind.value)
                _fail(job, exc)
                continue
            kind = job.kind.value
            done_at = time.monotonic()
            timing = DecodeTiming(
                queued_s=started - job.enqueued,
                seconds=encode_s + done_at - job_started,
                audio_s=job.audio.shape[0] / TARGET_RATE,
                done_at=done_at,
            )
            log.debug(
                "decoded",
                stream_id=job.stream_id,
                kind=kind,
                audio_s=round(timing.audio_s, 2),
                context=job.context is not None,
                queued_s=round(timing.queued_s, 3),
                seconds=round(timing.seconds, 3),
                temperature=result.quality.temperature,
            )
            self._charge(job.stream_id, timing.seconds)
            metrics.DECODE_SECONDS.labels(kind=kind).observe(timing.seconds)
            metrics.DECODED_AUDIO_SECONDS.labels(kind=kind).inc(timing.audio_s)
            if not job.future.done():  # the watchdog may have given up on it
                job.future.set_result(dataclasses.replace(result, timing=timing))

    def _encode(self, jobs: list[_Job], features: list[np.ndarray]) -> list[ctranslate2.StorageView]:
        """A batch-of-one encoder output per job, from one encoder pass per window length in the batch.

        The encoder has no padding mask, so jobs share a pass only when their windows are equal:
        a job's encoding never depends on the company it was batched with.
        """
        model = self._model
        content = [f[:, :-1] for f in features]  # generate_segments leaves out the last frame too
        windows = [encoder_frames(f.shape[-1], job.padding_s) for f, job in zip(content, jobs, strict=True)]
        outputs: dict[int, ctranslate2.StorageView] = {}
        for frames in sorted(set(windows)):
            members = [i for i, window in enumerate(windows) if window == frames]
            metrics.BATCH_SIZE.observe(len(members))
            if len(members) == 1:
                outputs[members[0]] = model.encode_window(content[members[0]], frames)
                continue
            # Slicing a batched output goes through host memory; on a GPU that copy is small
            # (frames / 2 x d_model per job) next to the encoder work the batch shares.
            stacked = np.stack([pad_or_trim(content[i], frames) for i in members])
            on_gpu = model.model.device == "cuda"
            array = np.asarray(model.model.encode(get_ctranslate2_storage(stacked), to_cpu=on_gpu))
            for row, i in enumerate(members):
                outputs[i] = ctranslate2.StorageView.from_array(np.ascontiguousarray(array[row : row + 1]))
        return [outputs[i] for i in range(len(features))]

    def _max_new_tokens(self, job: _Job, tokenizer: Tokenizer) -> int:
        audio_s = job.audio.shape[0] / TARGET_RATE
        prompt = len(tokenizer.encode(" " + job.options.prompt.strip())) if job.options.prompt else 0
        room = WHISPER_MAX_LENGTH - min(prompt, WHISPER_MAX_LENGTH // 2 - 1) - PROMPT_OVERHEAD_TOKENS
        if job.kind is JobKind.PARTIAL:
            budget = int(audio_s * PARTIAL_TOKENS_PER_SECOND) + PARTIAL_MIN_NEW_TOKENS
        else:
            budget = int(audio_s * TOKENS_PER_SECOND) + MIN_NEW_TOKENS
        return max(1, min(budget, room))

    def _inject_fault(self, job: _Job) -> None:
        if not self.settings.fault_injection or FAULT_MARKER not in (job.options.prompt or ""):
            return
        if self.settings.fault_injection == "raise":
            raise InjectedFault("injected decode failure (fault_injection=raise)")
        time.sleep(float(self.settings.fault_injection.split(":", 1)[1]))

    def _decode(self, job: _Job, features: np.ndarray, encoder_output: ctranslate2.StorageView) -> DecodeResult:
        """Decode a job; a final heard with context keeps the words after the context.

        The context is the stream's audio from the previous utterance on: offline Whisper hears the
        speech before an utterance in the same 30 s window, and on real speech that context saves
        errors (README, Benchmarks). When the context did not work as context, the utterance is
        decoded alone instead: the words kept do not cover the utterance (the model stopped after the
        context), or the model did not read the context as such (_misreads_context). Speech that
        really repeats the utterance before loses only the context.
        """
        self._inject_fault(job)
        language = self._language(job, encoder_output)
        result = self._generate(job, features, encoder_output, language)
        context = job.context
        utterance_s = (job.audio.shape[0] - context.utterance_start) / TARGET_RATE if context else 0.0
        if context and (result.misreads_context or not _covers(result.words, utterance_s)):
            log.debug("context_dropped", stream_id=job.stream_id, text=result.text, reread=result.misreads_context)
            alone = dataclasses.replace(job, audio=job.audio[context.utterance_start :], context=None)
            features = self._model.feature_extractor(alone.audio)
            frames = features.shape[-1] - 1  # generate_segments leaves out the last frame
            encoder_output = self._model.encode_window(features[:, :-1], encoder_frames(frames, alone.padding_s))
            result = self._generate(alone, features, encoder_output, language)
        if not job.options.word_timestamps:
            result = dataclasses.replace(result, words=[])
        return result

    def _language(self, job: _Job, encoder_output: ctranslate2.StorageView) -> tuple[str, float]:
        """(code, probability): the language asked for, the model's only one, or detected on the utterance's own audio.

        A final heard with context would also hear the previous utterance, maybe in another language (measured
        on base: a German, a Spanish and a French utterance after one in another language were detected as
        English, German and Italian on the context's encoder output): its utterance alone is encoded once more,
        in a short window (LANGUAGE_PADDING_S), for the detection, about 0.3 s on one core for 7 s of speech.
        Any other decode, partials included, detects on its own encoder output: one decoder step. Partials do
        not keep an utterance's first detection: made on 2 s of speech it was often wrong, and the partials
        after it would all have been decoded in the wrong language (German read as Thai).
        """
        model = self._model
        if job.options.language is not None:
            return job.options.language, 1.0
        if not model.model.is_multilingual:
            return "en", 1.0
        started = time.monotonic()
        if job.context is not None:
            own = model.feature_extractor(job.audio[job.context.utterance_start :])[:, :-1]
            encoder_output = model.encode_window(own, encoder_frames(own.shape[-1], LANGUAGE_PADDING_S))
        token, probability = model.model.detect_language(encoder_output)[0][0]
        metrics.LANGUAGE_DETECTION_SECONDS.labels(kind=job.kind.value).observe(time.monotonic() - started)
        return token[2:-2], float(probability)

    def _generate(
        self,
        job: _Job,
        features: np.ndarray,
        encoder_output: ctranslate2.StorageView,
        detected: tuple[str, float],
    ) -> DecodeResult:
        """Decode a job in its language, `detected` by _language (code, probability)."""
        model = self._model
        final = job.kind is JobKind.FINAL
        language, language_probability = detected
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
        if language not in self._suppressed_tokens:
            self._suppressed_tokens[language] = get_suppressed_tokens(tokenizer, [-1])
        assert self._base_options is not None
        # Finals decode as offline Whisper does (timestamps, temperature fallback); partials are greedy,
        # without timestamps or fallback: they are only shown, and must be cheap. Word timings split
        # a decode heard with context.
        options = dataclasses.replace(
            self._base_options,
            beam_size=self.settings.beam_size if final else 1,
            temperatures=list(FALLBACK_TEMPERATURES) if final else [0.0],
            initial_prompt=job.options.prompt,
            suppress_tokens=self._suppressed_tokens[language],
            without_timestamps=not final,
            word_timestamps=final and (job.options.word_timestamps or job.context is not None),
            max_new_tokens=self._max_new_tokens(job, tokenizer),
        )
        model.window.padding_s = job.padding_s  # for a second window, if faster-whisper opens one
        segments = list(model.generate_segments(features, tokenizer, options, False, encoder_output))
        speech_end_s = (job.audio.shape[0] - job.silence_after) / TARGET_RATE
        context = job.context and (
            job.context.utterance_start / TARGET_RATE,
            job.context.previous_speech_end / TARGET_RATE,
        )
        result = _result(segments, speech_end_s, language, language_probability, context)
        if not final:  # a loop is cut back to its first copy: the final decides what was said
            result = dataclasses.replace(result, text=quality.without_loop(result.text))
        return result


def _covers(words: list[Word], utterance_s: float) -> bool:
    """Whether the words span at least half the utterance's speech (its VAD pads excluded)."""
    return bool(words) and words[-1].end - words[0].start >= 0.5 * (utterance_s - 2 * CONTEXT_PAD_S)


def _base_options(model: WhisperModel) -> TranscriptionOptions:
    """faster-whisper's transcribe() defaults, built once; each job replaces what is its own.

    Unlike transcribe(): no conditioning across windows (each utterance stands alone) and no
    prefix, ever (a forced prefix made Whisper read the audio twice).
    """
    return TranscriptionOptions(
        beam_size=1,
        best_of=5,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        log_prob_threshold=quality.LOG_PROB_THRESHOLD,
        no_speech_threshold=quality.NO_SPEECH_THRESHOLD,
        compression_ratio_threshold=quality.COMPRESSION_RATIO_THRESHOLD,
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        temperatures=list(FALLBACK_TEMPERATURES),
        initial_prompt=None,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=[-1],
        without_timestamps=False,
        max_initial_timestamp=1.0,
        word_timestamps=False,
        prepend_punctuations="\"'“¿([{-",
        append_punctuations="\"'.。,，!！?？:：”)]}、",
        multilingual=False,
        max_new_tokens=None,
        clip_timestamps="0",
        hallucination_silence_threshold=None,
        hotwords=None,
    )


def _result(
    segments: list[Segment],
    speech_end_s: float,
    language: str,
    language_probability: float,
    context: tuple[float, float] | None = None,
) -> DecodeResult:
    """The decode's text, words and signals, without what no speech supports; times from the utterance's start.

    A segment or word that starts after the last voiced frame (less TRAILING_WORD_MARGIN_S) was invented
    in the silence after the speech (the VAD's pad, the encoder window's margin); a run of words repeated
    right after itself whose second copy took less than half the first copy's time was read twice; a
    sentence the model barely believes after a finished one is a sign-off it invented.

    `context`: (utterance start, previous speech end) in the decoded audio. A segment that starts after
    the previous speech ended is the utterance's, whole (Whisper often times a segment's first word
    from the silence before it); one that ends by then is the previous utterance's (its own final has
    it); one that spans both is split by word, a word being the utterance's when it ends
    CONTEXT_SPLIT_S into it.
    """
    limit = speech_end_s - quality.TRAILING_WORD_MARGIN_S
    segments = [segment for segment in segments if segment.start < limit]
    heard = segments
    offset = 0.0
    if context is not None:
        offset, previous_end = context
        segments = [segment for segment in segments if segment.end > previous_end + CONTEXT_SPLIT_S]
    kept = [
        w
        for segment in segments
        for w in (segment.words or [])
        if w.start < limit
        and not set(w.word.strip()) <= NOT_A_WORD  # a lone "." or "..." is no word; "%" or "$" is one
        and (context is None or segment.start >= context[1] - CONTEXT_SPLIT_S or w.end > offset + CONTEXT_SPLIT_S)
    ]
    misread = context is not None and _misreads_context(heard, kept, offset)
    words = [Word(w.word.strip(), max(0.0, w.start - offset), max(0.0, w.end - offset), w.probability) for w in kept]
    kept = quality.without_invented_sign_off(kept)
    words = words[: len(kept)]
    timed = any(segment.words is not None for segment in segments)
    # Whisper's words carry their own leading space, or none ("Illinois" "-based").
    text = "".join(w.word for w in kept).strip() if timed else "".join(s.text for s in segments).strip()
    repeat = quality.repeated_run([w.word for w in words])
    if repeat is not None:
        start, length = repeat
        first, second = words[start : start + length], words[start + length : start + 2 * length]
        if second[-1].end - second[0].start < 0.5 * (first[-1].end - first[0].start):
            words = words[: start + length] + words[start + 2 * length :]
            kept = kept[: start + length] + kept[start + 2 * length :]
            text = "".join(w.word for w in kept).strip()
    if not segments:
        return DecodeResult("", [], 0.0, language, language_probability)
    logprobs = [segment.avg_logprob for segment in segments]
    signals = Quality(
        no_speech_prob=max(segment.no_speech_prob for segment in segments),
        avg_logprob=sum(logprobs) / len(logprobs),
        compression_ratio=max(segment.compression_ratio for segment in segments),
        temperature=max(segment.temperature or 0.0 for segment in segments),
    )
    signals = dataclasses.replace(
        signals,
        flags=tuple(
            quality.flags(
                signals.no_speech_prob, signals.avg_logprob, signals.compression_ratio, signals.temperature, text
            )
        ),
    )
    if repeat is not None and quality.Flag.REPETITION not in signals.flags:
        signals = dataclasses.replace(signals, flags=(*signals.flags, quality.Flag.REPETITION))
    return DecodeResult(
        text, words, math.exp(signals.avg_logprob), language, language_probability, signals, misreads_context=misread
    )


def _misreads_context(segments: list[Segment], kept: list[Any], utterance_start_s: float) -> bool:
    """Whether a decode heard with context did not read it as such: no words in the context, or the
    utterance's words begin with the first REREAD_WORDS words of the context's (it was read again)."""
    kept_ids = {id(w) for w in kept}
    heard = [
        word_key(w.word)
        for s in segments
        for w in (s.words or [])
        if id(w) not in kept_ids and w.end <= utterance_start_s + CONTEXT_SPLIT_S
    ]
    heard = [key for key in heard if key]
    own = [key for key in (word_key(w.word) for w in kept) if key]
    if not heard:
        return bool(own)
    return len(heard) >= REREAD_WORDS and len(own) >= REREAD_WORDS and own[:REREAD_WORDS] == heard[:REREAD_WORDS]
