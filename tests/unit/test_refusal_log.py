"""The refusals' log is bounded: a few lines in full per interval, then one summary with the count, written at
the end of the interval (or on flush), per peer address."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from hws.server.auth import MAX_SUMMARY_PEERS, RefusalLog


def test_a_flood_is_a_few_lines_and_a_summary_per_interval() -> None:
    asyncio.run(_flood())


async def _flood() -> None:
    refusals = RefusalLog(logged_in_full=3, interval_s=0.2)
    with capture_logs() as logs:
        for number in range(50):
            refusals.refused("/m", f"ipv4:10.0.0.{number % 2}:{40000 + number}", key_sent=False)
        assert [entry["event"] for entry in logs] == ["unauthenticated"] * 3
        await asyncio.sleep(0.4)  # the interval ends: its summary is written without another refusal
        assert logs[3] == {
            "event": "unauthenticated_suppressed",
            "log_level": "info",
            "count": 47,
            "interval_s": 0.2,
            "peers": {"ipv4:10.0.0.1": 24, "ipv4:10.0.0.0": 23},
        }
        # A new interval: lines in full again, and a flush (the server stopping) sums up the rest at once.
        for _ in range(5):
            refusals.refused("/m", "ipv6:[::1]:5000", key_sent=True)
        refusals.flush()
        refusals.flush()  # nothing left: no second summary
    assert [entry["event"] for entry in logs[4:]] == ["unauthenticated"] * 3 + ["unauthenticated_suppressed"]
    assert logs[-1]["count"] == 2 and logs[-1]["peers"] == {"ipv6:[::1]": 2}


def test_a_summary_names_a_bounded_number_of_peers() -> None:
    asyncio.run(_many_peers())


async def _many_peers() -> None:
    refusals = RefusalLog(logged_in_full=0, interval_s=60.0)
    with capture_logs() as logs:
        for number in range(1000):
            refusals.refused("/m", f"ipv4:10.0.{number // 256}.{number % 256}:1", key_sent=False)
        refusals.flush()
    (summary,) = logs
    assert summary["count"] == 1000
    assert len(summary["peers"]) == MAX_SUMMARY_PEERS + 1 and summary["peers"]["other"] == 1000 - MAX_SUMMARY_PEERS
