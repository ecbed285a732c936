"""hws.server.compat: the arrival clock of the original interface."""

from __future__ import annotations


def test_the_compat_arrival_clock_forgets_what_no_result_can_ask_for() -> None:
    from hws.server.compat import SAMPLE_RATE, ArrivalClock

    clock = ArrivalClock()
    for second in range(100_000):
        clock.record(SAMPLE_RATE)  # one second of audio per message
        if second % 10 == 9:
            clock.forget_before(second - 5.0)  # a final up to 5 s ago
    assert len(clock._arrivals._ends) < 100
    assert clock.wall_time(99_998.5) > 0
