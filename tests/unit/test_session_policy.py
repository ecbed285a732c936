"""The session's decisions as numbers in, answers out (hws.stream.policy): no audio, no clock, no scheduler."""

from __future__ import annotations

import numpy as np
import pytest

from hws.asr.types import Context
from hws.stream.outputs import FailureCode, StreamAged
from hws.stream.policy import KEEP, PartialProgress, Speculation, StreamPolicy
from hws.stream.vad import EndReason, SpeechEnd

RATE = 16_000
FRESH = PartialProgress(requested_len=0, shown=False, committed_words=0, committed_at=0)


def policy(**age: float) -> StreamPolicy:
    return StreamPolicy(700, opened_at=100.0, **age)


def test_a_partial_waits_for_an_interval_of_new_audio_and_at_least_half_a_second() -> None:
    p = policy()
    assert p.partial_start(FRESH, 11_199, 0) is None
    assert p.partial_start(FRESH, 11_200, 0) == 0
    quick = StreamPolicy(300, opened_at=0.0)
    assert quick.partial_start(FRESH, RATE // 2 - 1, 0) is None
    assert quick.partial_start(FRESH, RATE // 2, 0) == 0
    shown = PartialProgress(requested_len=RATE, shown=True, committed_words=0, committed_at=0)
    assert p.partial_start(shown, RATE + 11_199, 0) is None  # 0.7 s at 16 kHz is 11 200 samples
    assert p.partial_start(shown, RATE + 11_200, 0) == 0


def test_before_the_first_words_partials_come_twice_as_often() -> None:
    wordless = PartialProgress(requested_len=RATE, shown=False, committed_words=0, committed_at=0)
    assert policy().partial_start(wordless, RATE + 5_600, 0) == 0
    assert policy().partial_start(wordless, RATE + 5_599, 0) is None


def test_no_partial_once_the_speaker_has_paused_for_240_ms() -> None:
    assert policy().partial_start(FRESH, 2 * RATE, 239) == 0
    assert policy().partial_start(FRESH, 2 * RATE, 240) is None


def test_with_words_committed_a_partial_reads_the_tail_from_3_s_before_they_were_extended() -> None:
    early = PartialProgress(requested_len=4 * RATE, shown=True, committed_words=3, committed_at=4 * RATE)
    assert policy().partial_start(early, 5 * RATE, 0) == 0  # the tail would skip only 1 s: read it all
    late = PartialProgress(requested_len=8 * RATE, shown=True, committed_words=9, committed_at=8 * RATE)
    assert policy().partial_start(late, 9 * RATE, 0) == 5 * RATE
    uncommitted = PartialProgress(requested_len=8 * RATE, shown=True, committed_words=0, committed_at=8 * RATE)
    assert policy().partial_start(uncommitted, 9 * RATE, 0) == 0


def test_a_final_starts_early_on_an_idle_worker_and_is_replaced_when_the_pause_moves() -> None:
    def never() -> bool:
        raise AssertionError("no worker is asked about when nothing would start")

    assert StreamPolicy.speculation(None, None, never) == KEEP
    assert StreamPolicy.speculation(None, 5000, never) == KEEP  # speech resumed: the endpoint decides
    assert StreamPolicy.speculation(5000, 5000, never) == KEEP
    assert StreamPolicy.speculation(5000, None, lambda: True) == Speculation(drop=False, start=True)
    assert StreamPolicy.speculation(5000, None, lambda: False) == Speculation(drop=False, start=False)
    assert StreamPolicy.speculation(7000, 5000, lambda: False) == Speculation(drop=True, start=False)
    assert StreamPolicy.speculation(7000, 5000, lambda: True) == Speculation(drop=True, start=True)


def end(start: int, voiced_end: int, end: int) -> SpeechEnd:
    audio = np.zeros(end - start, np.float32)
    return SpeechEnd(start, end, audio, (voiced_end - start) * 1000 // RATE, EndReason.SILENCE, voiced_end)


def test_a_final_hears_the_previous_utterance_when_both_fit_28_s() -> None:
    first, second = end(1_000, 40_000, 45_000), end(60_000, 90_000, 95_000)
    assert StreamPolicy.context(None, first) is None
    assert StreamPolicy.context(first, second) == (1_000, Context(59_000, 39_000))
    far = end(1_000 + 28 * RATE - 10_000, 1_000 + 28 * RATE - 100, 1_000 + 28 * RATE + 1)
    assert StreamPolicy.context(first, far) is None


def test_the_age_limit_ends_at_a_pause_after_the_age_and_anywhere_after_the_overrun() -> None:
    p = policy(max_age_s=300.0, max_age_overrun_s=30.0)
    assert not p.aged(399.9) and p.aged(400.0)
    assert not p.overrun(429.9) and p.overrun(430.0)
    assert p.read_timeout(30.0, 100.0) == 30.0
    assert p.read_timeout(30.0, 420.0) == pytest.approx(10.0)
    assert p.read_timeout(30.0, 500.0) == 0.0
    aged = p.aged_failure(12_345)
    assert isinstance(aged, StreamAged) and aged.position == 12_345 and aged.retry_after_s == 0.0
    assert p.overrun_failure().code is FailureCode.MAX_AGE
    p.ending()
    assert not p.aged(1e9) and not p.overrun(1e9) and p.read_timeout(30.0, 1e9) == 30.0


def test_without_an_age_limit_nothing_ends_the_stream() -> None:
    p = policy()
    assert not p.aged(1e12) and not p.overrun(1e12) and p.read_timeout(5.0, 1e12) == 5.0
