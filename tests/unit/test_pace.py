"""hws.stream.pace: a trickle falls behind, silence at real time and a file sent fast then waiting do not."""

from __future__ import annotations

from hws.stream.pace import AudioPace

RATE = 16_000


def _run(pace: AudioPace, seconds: int, audio_per_s: float, start: int = 0, total: int = 0) -> int:
    for t in range(start, start + seconds):
        total += round(audio_per_s * RATE)
        pace.received(total, float(t + 1))
    return total


def test_a_trickle_is_behind_once_a_window_has_passed() -> None:
    pace = AudioPace(0.5, 10.0, 0.0)
    _run(pace, 9, 0.0001)
    assert pace.shortfall(9.0) is None  # the grace: younger than a window
    _run(pace, 3, 0.0001, start=9)
    ratio = pace.shortfall(12.0)
    assert ratio is not None and ratio < 0.01
    assert "0.00x real time" in str(pace.failure(ratio))


def test_real_time_audio_and_a_fast_file_waiting_for_results_are_not_behind() -> None:
    quiet_room = AudioPace(0.5, 10.0, 0.0)
    _run(quiet_room, 60, 1.0)
    assert quiet_room.shortfall(60.0) is None
    fast_file = AudioPace(0.5, 10.0, 0.0)
    total = _run(fast_file, 2, 30.0)  # 60 s of audio in 2 s, then nothing while its finals come
    assert fast_file.shortfall(40.0) is None  # over its life still ahead of real time
    assert fast_file.shortfall(130.0) is not None  # until it has not been for a window
    assert total == 60 * RATE


def test_a_stream_that_slows_down_is_caught_by_the_window() -> None:
    pace = AudioPace(0.5, 10.0, 0.0)
    total = _run(pace, 30, 1.0)
    _run(pace, 40, 0.1, start=30, total=total)  # 0.1x for 40 s: its life's average falls under 0.5 at 70 s
    assert pace.shortfall(70.0) is not None
