"""hws.client.resume: what a resumed stream sends again, and the backoff between attempts."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_a_resumed_stream_starts_with_the_settings_in_force_and_sends_later_updates_again() -> None:
    from hws.client.resume import _SentAudio
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    applied, refused = pb.ConfigUpdate.APPLIED, pb.ConfigUpdate.REFUSED
    first, second, third, fourth = (
        pb.StreamingConfig(recognition=pb.RecognitionConfig(endpoint_silence_ms=ms)) for ms in (200, 300, 400, 600)
    )
    sent = _SentAudio(32000, 2, first)  # 16 kHz LINEAR16
    second_of_audio = b"\0" * 32000
    sent.add(second_of_audio)
    second_sent = sent.update(second)  # at 1 s
    sent.add(second_of_audio)
    third_sent = sent.update(third)  # at 2 s
    sent.add(second_of_audio)
    fourth_sent = sent.update(fourth)  # at 3 s
    sent.add(second_of_audio)
    assert sent.acknowledged(second_sent, applied) and sent.acknowledged(third_sent, refused)
    assert sent.acknowledged(fourth_sent, applied)
    sent.finalised(2.5)
    offset_s, audio, settings, again = sent.snapshot()
    # Behind the final offset: the applied update is the settings in force, the refused one is gone.
    assert (offset_s, len(audio), settings) == (2.5, 48000, second)
    # Ahead of it: sent again at its place in the audio sent again; its second answer is not news.
    assert again == [(16000, fourth_sent)]
    assert not sent.acknowledged(fourth_sent, applied)
    # An update not yet answered blocks nothing that came before it and is sent again too.
    fifth_sent = sent.update(first)
    sent.finalised(4.0)
    assert sent.snapshot()[2:] == (fourth, [(0, fifth_sent)])


def _equal_jitter_bounds(failures: int, backoff_s: float, cap_s: float, pushback_s: float) -> tuple[float, float]:
    ceiling = min(cap_s, backoff_s * 2 ** (failures - 1))
    floor = max(pushback_s, ceiling / 2)
    return floor, floor + ceiling / 2


@pytest.mark.parametrize("pushback_s", [0.0, 3.0])
def test_the_resume_backoff_doubles_to_its_cap_with_jitter_above_the_servers_pushback(pushback_s: float) -> None:
    import random

    from hws.client import resume_delay

    rng = random.Random(14)
    for failures in range(1, 12):
        low, high = _equal_jitter_bounds(failures, 0.5, 10.0, pushback_s)
        delays = [resume_delay(failures, 0.5, 10.0, pushback_s, rng) for _ in range(2000)]
        assert all(low <= delay <= high for delay in delays), (failures, low, high)
        # Spread over the whole interval: clients that failed together do not come back together.
        assert min(delays) < low + 0.05 * (high - low) and max(delays) > high - 0.05 * (high - low)
        assert len(set(delays)) == len(delays)
    assert high == max(pushback_s, 5.0) + 5.0  # the cap (10 s) holds from the sixth failure on
    assert resume_delay(10_000, 0.5, 10.0, pushback_s, rng) <= max(pushback_s, 5.0) + 5.0  # no overflow
    # After a connection that made progress: the pushback plus up to backoff_s (a drain's clients spread out).
    assert all(pushback_s <= resume_delay(0, 0.5, 10.0, pushback_s, rng) <= pushback_s + 0.5 for _ in range(200))
    # The same seed, the same schedule.
    first, second = random.Random(5), random.Random(5)
    assert [resume_delay(n, rng=first) for n in range(8)] == [resume_delay(n, rng=second) for n in range(8)]


def test_a_stream_that_cannot_connect_backs_off_on_the_schedule_until_its_attempts_run_out(tmp_path: Path) -> None:
    import random

    import grpc

    from hws import client
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    nowhere = f"unix:{tmp_path / 'no-server.sock'}"  # refused at once: UNAVAILABLE, and no progress
    source = client.AudioSource([b"\0\0" * 1600], 16_000)
    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=16_000))
    retries: list[tuple[int, float]] = []
    responses = client.stream_resumable(
        lambda connection: client.make_channel(nowhere),
        source,
        config,
        attempts=6,
        backoff_s=0.01,
        max_backoff_s=0.04,
        rng=random.Random(3),
        on_retry=lambda exc, connection, delay: retries.append((connection, delay)),
    )
    with pytest.raises(grpc.RpcError) as raised:
        list(responses)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    expected = random.Random(3)
    assert retries == [(n, client.resume_delay(n, 0.01, 0.04, 0.0, expected)) for n in range(1, 7)]
    assert [delay <= 0.04 for _, delay in retries] == [True] * 6
