"""Whether a stream's audio keeps up with the clock, so a trickle cannot hold a stream slot for ever.

A client that sends a byte a second resets every idle timer and holds its slot without end. Silence sent
at real time is legitimate (an open microphone in a quiet room), and so is a file sent faster than real
time, then a wait for its results: a stream is behind only when its audio over the last window and over
its whole life both fall under the minimum share of real time.
"""

from __future__ import annotations

import collections

from hws.audio import TARGET_RATE
from hws.stream.outputs import FailureCode, StreamFailure

MARK_STEP_S = 1.0  # the window's start is known to this precision


class AudioPace:
    def __init__(self, min_ratio: float, window_s: float, started_at: float) -> None:
        self.min_ratio = min_ratio
        self.window_s = window_s
        self._started_at = started_at
        self._marks: collections.deque[tuple[float, int]] = collections.deque([(started_at, 0)])
        self._samples = 0

    def received(self, samples: int, now: float) -> None:
        """The stream has taken in `samples` 16 kHz samples in all, by `now`."""
        self._samples = samples
        if now - self._marks[-1][0] >= MARK_STEP_S:
            self._marks.append((now, samples))

    def shortfall(self, now: float) -> float | None:
        """The audio's share of real time over the last window when the stream is behind, else None."""
        cutoff = now - self.window_s
        if self._marks[0][0] > cutoff:
            return None  # younger than a window: the grace
        while len(self._marks) > 1 and self._marks[1][0] <= cutoff:
            self._marks.popleft()
        since, before = self._marks[0]
        recent = (self._samples - before) / TARGET_RATE / (now - since)
        overall = self._samples / TARGET_RATE / (now - self._started_at)
        if recent < self.min_ratio and overall < self.min_ratio:
            return recent
        return None

    def failure(self, ratio: float) -> StreamFailure:
        return StreamFailure(
            FailureCode.TOO_SLOW,
            f"audio arrived at {ratio:.2f}x real time over the last {self.window_s:g} s; a stream must carry "
            f"at least {self.min_ratio:g}x real time (send silence through pauses) or be closed",
        )
