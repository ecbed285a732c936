"""A backend with no model, for the scheduler's unit tests."""

from __future__ import annotations

from typing import Any

import numpy as np


class FakeBackend:
    """A Backend (hws.asr.types) with no model: the scheduler's queue policy on real threads, in milliseconds.

    Features are the audio; a window is the audio and its margin in whole seconds (as the real encoder's);
    a decode's text is its stream id. A stream's decodes wait while `hold(stream)` is in force, so a test
    can keep workers busy; `passes` records each encoder pass as (frames, audio lengths).
    """

    language_codes = frozenset({"en", "de"})

    def __init__(self, workers: int = 1, max_batch_size: int = 1) -> None:
        import threading
        from collections import Counter

        self.workers = workers
        self.max_batch_size = max_batch_size
        self.passes: list[tuple[int, list[int]]] = []
        self.decoded: list[tuple[str, str]] = []  # (stream id, job kind), in decode order
        self.running: Counter[str] = Counter()  # stream id -> its decodes running now
        self.peak: Counter[str] = Counter()  # stream id -> most of its decodes that ran at once
        self.started = threading.Semaphore(0)  # released as each decode begins
        self._gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def hold(self, stream_id: str) -> None:
        import threading

        self._gates[stream_id] = threading.Event()

    def release(self, stream_id: str) -> None:
        self._gates.pop(stream_id).set()

    def load(self) -> Any:
        from hws.asr.types import ModelInfo

        return ModelInfo("fake", "", "cpu", "int8", False)

    def prompt(self, initial_prompt: str, hotwords: Any) -> str | None:
        return " ".join([initial_prompt, *hotwords]).strip() or None

    def features(self, audio: np.ndarray) -> np.ndarray:
        return audio

    def window(self, features: np.ndarray, padding_s: float) -> int:
        return -(-(features.shape[0] + round(padding_s * 16_000)) // 16_000) * 100

    def encode(self, features: Any, frames: int) -> list[Any]:
        with self._lock:
            self.passes.append((frames, [f.shape[0] for f in features]))
        return [frames] * len(features)

    def decode(self, job: Any, features: Any, encoder_output: Any) -> Any:
        from hws.asr.types import DecodeResult

        with self._lock:
            self.running[job.stream_id] += 1
            self.peak[job.stream_id] = max(self.peak[job.stream_id], self.running[job.stream_id])
        self.started.release()
        try:
            gate = self._gates.get(job.stream_id)
            if gate is not None:
                gate.wait(10)
            with self._lock:
                self.decoded.append((job.stream_id, job.kind.value))
            return DecodeResult(job.stream_id, [], 1.0, "en", 1.0)
        finally:
            with self._lock:
                self.running[job.stream_id] -= 1
