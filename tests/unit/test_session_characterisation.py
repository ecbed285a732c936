"""Characterisation of one stream's session: what it asks of the recognizer and what it sends, step by step.

No model and no recorded audio: a synthetic voiced signal (harmonics of 120 Hz at a syllable rhythm,
which webrtcvad hears as speech), the real scheduler on a backend that answers at once with a word per
second of audio, and hws.stream.simulate's clock: after each chunk it waits until every decode has
come back and every result was read, so the run is the same each time: the decisions the
session makes (when a partial is decoded and from where, when a final starts early, when it hears
the previous utterance, when the age limit ends the stream) are read off the requests and outputs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from hws.asr.scheduler import Engine, SchedulerSettings
from hws.asr.types import DecodeRequest, DecodeResult, ModelInfo
from hws.audio import TARGET_RATE, Encoding
from hws.server.settings import Settings
from hws.stream.outputs import Event, FailureCode, Progress, Result, StreamAged, StreamFailure, StreamParams
from hws.stream.simulate import simulate
from hws.stream.vad import VadParams

CHUNK_S = 0.1


def vowel(seconds: float, f0: float = 120.0) -> np.ndarray:
    t = np.arange(round(seconds * TARGET_RATE)) / TARGET_RATE
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 30))
    rhythm = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (0.3 * harmonics / np.abs(harmonics).max() * rhythm).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * TARGET_RATE), np.float32)


class WordsBackend:
    """Answers every request at once with a word per second of the audio it reads ("w0 w1 ...")."""

    language_codes = frozenset({"en"})
    workers = 1
    max_batch_size = 1

    def __init__(self) -> None:
        self.requests: list[DecodeRequest] = []
        self._lock = threading.Lock()

    def load(self) -> ModelInfo:
        return ModelInfo("words", "", "cpu", "int8", False)

    def prompt(self, initial_prompt: str, hotwords: Sequence[str]) -> str | None:
        return None

    def features(self, audio: np.ndarray) -> np.ndarray:
        return audio

    def window(self, features: np.ndarray, padding_s: float) -> int:
        return features.shape[0]

    def encode(self, features: Sequence[Any], frames: int) -> list[Any]:
        return [None] * len(features)

    def decode(self, request: DecodeRequest, features: Any, encoder_output: Any) -> DecodeResult:
        with self._lock:
            self.requests.append(request)
        text = " ".join(f"w{i}" for i in range(request.audio.shape[0] // TARGET_RATE))
        return DecodeResult(text, [], 1.0, "en", 1.0)


@dataclasses.dataclass
class Run:
    requests: list[tuple[str, float, bool]]  # (kind, seconds of audio, heard with context)
    outputs: list[Any]
    failure: StreamFailure | None


def params(interim: bool = True) -> StreamParams:
    return StreamParams(Encoding.LINEAR16, TARGET_RATE, 1, "en", False, None, VadParams(), interim, True)


def drive(audio: np.ndarray, *, interim: bool = True, max_age_s: float = 0.0, overrun_s: float = 0.0) -> Run:
    backend = WordsBackend()
    engine = Engine(Settings().pick(SchedulerSettings), backend)
    engine.load()
    try:
        run = asyncio.run(
            simulate(audio, params(interim), engine, chunk_s=CHUNK_S, max_age_s=max_age_s, max_age_overrun_s=overrun_s)
        )
    finally:
        engine.stop()
    requests = [
        (r.kind.value, round(r.audio.shape[0] / TARGET_RATE, 2), r.context is not None) for r in backend.requests
    ]
    return Run(requests, run.outputs, run.failure)


TWO_UTTERANCES = np.concatenate([silence(1.0), vowel(3.0), silence(1.0), vowel(2.0), silence(1.0)])


def test_partials_come_each_interval_of_new_audio_twice_as_often_before_the_first_words() -> None:
    run = drive(TWO_UTTERANCES)
    partials = [seconds for kind, seconds, _ in run.requests if kind == "partial"]
    # The first once the utterance holds 0.5 s (it is heard a few VAD frames late, with its pre-roll);
    # it shows no word (under a second), so the next comes after half the 0.7 s interval; from the
    # first words on, one per 0.7 s of new audio, on the 0.1 s chunks' grid.
    assert partials == [0.81, 1.2, 2.01, 2.79, 3.51, 0.72, 1.11, 1.92]
    shown = [o.text for o in run.outputs if isinstance(o, Result) and not o.is_final]
    assert shown == ["w0", "w0 w1", "w0 w1", "w0 w1 w2", "w0", "w0"]
    assert run.failure is None


def test_no_partial_is_asked_for_when_interim_results_are_off() -> None:
    run = drive(TWO_UTTERANCES, interim=False)
    assert [kind for kind, _, _ in run.requests] == ["final", "final"]


def test_a_final_starts_early_in_the_pause_and_the_second_hears_the_first() -> None:
    run = drive(TWO_UTTERANCES)
    finals = [(seconds, context) for kind, seconds, context in run.requests if kind == "final"]
    # Each final is decoded once, begun in the pause (speculative) and used at the endpoint; the
    # second is heard from the first utterance's start on (context), so it reads both.
    assert len(finals) == 2
    assert finals[0][1] is False and finals[1][1] is True
    assert finals[1][0] > finals[0][0]
    results = [o for o in run.outputs if isinstance(o, Result) and o.is_final]
    assert [r.utterance_id for r in results] == ["u690", "u4680"]
    events = [(o.type.value, o.utterance_id) for o in run.outputs if isinstance(o, Event)]
    assert events == [
        ("SPEECH_STARTED", "u690"),
        ("SPEECH_ENDED", "u690"),
        ("SPEECH_STARTED", "u4680"),
        ("SPEECH_ENDED", "u4680"),
    ]


def test_a_long_utterance_s_partials_read_its_tail_once_words_are_committed() -> None:
    run = drive(np.concatenate([silence(0.5), vowel(12.0), silence(1.0)]))
    partials = [seconds for kind, seconds, _ in run.requests if kind == "partial"]
    # Up to 6.4 s each partial reads the utterance from its start; then, with words committed, from
    # 3 s before the audio that last extended the stable text (at least 2 s into the utterance).
    assert partials == [0.72, 1.11, 1.92, 2.7, 3.42, 4.2, 4.92, 5.7, 6.42, 3.78, 4.5, 5.28, 6.0, 6.78, 3.72, 4.5, 5.22]
    assert [kind for kind, _, _ in run.requests].count("final") == 1


def test_the_age_limit_ends_the_stream_at_the_next_pause() -> None:
    run = drive(TWO_UTTERANCES, max_age_s=2.0, overrun_s=10.0)
    # Aged during the first utterance: it ends at its endpoint, the second never starts.
    assert isinstance(run.failure, StreamAged)
    assert [kind for kind, _, _ in run.requests].count("final") == 1
    finals = [o for o in run.outputs if isinstance(o, Result) and o.is_final]
    assert [r.utterance_id for r in finals] == ["u690"]
    assert run.failure.position / TARGET_RATE == pytest.approx(finals[0].end_s, abs=0.05)


def test_past_the_age_and_its_overrun_without_a_pause_the_stream_ends_where_it_is() -> None:
    run = drive(np.concatenate([silence(0.5), vowel(6.0)]), max_age_s=1.0, overrun_s=2.0)
    assert run.failure is not None and run.failure.code is FailureCode.MAX_AGE
    assert not isinstance(run.failure, StreamAged)
    finals = [o for o in run.outputs if isinstance(o, Result) and o.is_final]
    assert len(finals) == 1 and finals[0].end_s < 4.0  # finalised up to where it was cut
    assert isinstance(run.outputs[-1], Progress | Result)
