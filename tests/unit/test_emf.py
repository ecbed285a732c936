"""app/hws/server/emf.py's quantile estimate from histogram bucket deltas, against hand-worked cases."""

from __future__ import annotations

import math

import pytest

from hws.server.emf import quantile

BOUNDS = (0.5, 1.0, 2.0, math.inf)


def buckets(*cumulative: float) -> dict[float, float]:
    return dict(zip(BOUNDS, cumulative, strict=True))


def test_no_observations_in_the_interval_gives_none() -> None:
    same = buckets(3, 5, 8, 8)
    assert quantile(0.95, same, same) is None
    assert quantile(0.95, {}, buckets(0, 0, 0, 0)) is None


def test_linear_within_the_bucket_like_histogram_quantile() -> None:
    # 10 observations: 4 at or below 0.5, 4 more up to 1.0, 2 more up to 2.0.
    after = buckets(4, 8, 10, 10)
    assert quantile(0.5, {}, after) == pytest.approx(0.5 + 0.5 * (5 - 4) / 4)
    assert quantile(0.95, {}, after) == pytest.approx(1.0 + 1.0 * (9.5 - 8) / 2)
    assert quantile(0.2, {}, after) == pytest.approx(0.5 * 2 / 4)


def test_only_the_interval_counts() -> None:
    before = buckets(100, 100, 100, 100)  # earlier observations, all fast
    after = buckets(100, 100, 110, 110)  # the interval: 10 between 1 and 2 s
    assert quantile(0.95, before, after) == pytest.approx(1.0 + 9.5 / 10)


def test_above_the_highest_bound_gives_that_bound() -> None:
    assert quantile(0.95, {}, buckets(0, 0, 1, 10)) == 2.0
