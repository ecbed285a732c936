"""hws.stream.session: a result's latency in parts, arrival times by stream position."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("endpoint_at", "done_at", "seconds", "endpoint", "queue", "decode"),
    [
        (10.5, 11.5, 0.4, 0.5, 0.6, 0.4),  # queued after the endpoint: waited, then decoded
        (10.5, 10.7, 0.4, 0.5, 0.0, 0.2),  # begun in the pause: only the decode's last 0.2 s is after the endpoint
        (10.5, 10.4, 0.4, 0.5, 0.0, 0.0),  # done before the endpoint: all of it hidden in the endpoint wait
        (10.0, 10.9, 0.4, 0.0, 0.5, 0.4),  # a partial: no endpoint, from its audio end
    ],
)
def test_a_results_latency_splits_into_parts_that_follow_one_another(
    endpoint_at: float, done_at: float, seconds: float, endpoint: float, queue: float, decode: float
) -> None:
    from hws.asr.types import DecodeTiming
    from hws.stream.outputs import result_timing

    timing = result_timing(10.0, endpoint_at, DecodeTiming(0.0, seconds, 8.0, done_at), sent_at=12.0)
    parts = (timing.endpoint_wait_s, timing.queue_wait_s, timing.decode_s)
    assert parts == pytest.approx((endpoint, queue, decode))
    assert timing.latency_s == 2.0 and sum(parts) <= timing.latency_s
    assert timing.real_time_factor == pytest.approx(0.05) and timing.decoded_audio_s == 8.0


def test_arrival_times_are_looked_up_by_stream_position_and_forgotten_behind_the_final_position() -> None:
    from hws.stream.intake import ARRIVAL_STEP, Arrivals

    arrivals = Arrivals()
    for n in range(1, 11):
        arrivals.add(n * 1600, float(n))  # 100 ms messages, one a second
    assert arrivals.at(1600) == 1.0 and arrivals.at(1601) == 2.0 and arrivals.at(16_000) == 10.0
    arrivals.forget(8000)  # the messages that end before sample 8000 go
    assert arrivals.at(1) == 5.0 and arrivals.at(8000) == 5.0
    for n in range(1, 1001):  # one sample a message: merged, at most one entry per ARRIVAL_STEP of audio
        arrivals.add(16_000 + n, 10.0 + n)
    assert len(arrivals._ends) <= 6 + 1000 // ARRIVAL_STEP + 1
    # A position reads the arrival of a message at most ARRIVAL_STEP samples after its own.
    for position in (16_001, 16_500, 17_000):
        assert position - 16_000 + 10.0 <= arrivals.at(position) <= position - 16_000 + 10.0 + ARRIVAL_STEP
