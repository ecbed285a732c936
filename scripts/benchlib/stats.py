"""Figures: percentiles and their summary, ratios, rounded corpus WER, this process's CPU time."""

from __future__ import annotations

import math
import resource
import statistics
from collections.abc import Sequence

from tests.support import corpus_wer


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "max": r(max(values) if values else None),
        "mean": r(statistics.fmean(values) if values else None),
    }


def rounded_wer(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Corpus WER over (reference, hypothesis) pairs after Whisper's English normaliser; None for no pairs."""
    return round(corpus_wer(pairs), 4) if pairs else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else round(a / b, 3)


def own_cpu_seconds() -> float:
    """utime + stime of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
