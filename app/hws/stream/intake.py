"""Audio intake: a client's bytes become 16 kHz samples, kept for context, with when each part arrived."""

from __future__ import annotations

import bisect

import numpy as np

from hws import metrics
from hws.audio import TARGET_RATE, AudioDecoder, AudioFormatError, RecentAudio
from hws.stream.outputs import FailureCode, StreamFailure, StreamParams

# Arrival times are kept per this much audio at the finest: a client sending tiny messages costs no more.
ARRIVAL_STEP = TARGET_RATE // 100


class Arrivals:
    """When the stream's audio arrived: the stream position one past each message's last sample, and the time.

    A message that ends at most ARRIVAL_STEP after the entry before the last merges into the last, so
    there is at most about one entry per ARRIVAL_STEP of audio, and a position reads a time at most that
    much audio late. The session keeps monotonic times; the compat service keeps wall-clock ones.
    """

    def __init__(self) -> None:
        self._ends: list[int] = []
        self._times: list[float] = []

    def add(self, end: int, at: float) -> None:
        if len(self._ends) >= 2 and end - self._ends[-2] <= ARRIVAL_STEP:
            self._ends[-1], self._times[-1] = end, at
        else:
            self._ends.append(end)
            self._times.append(at)

    def at(self, position: int) -> float:
        """When the sample just before `position` had arrived."""
        index = min(bisect.bisect_left(self._ends, position), len(self._ends) - 1)
        return self._times[index]

    def forget(self, before: int) -> None:
        """Drop the entries of audio that ends before `before`: no later lookup asks for it."""
        index = bisect.bisect_left(self._ends, before)
        if index:
            del self._ends[:index], self._times[:index]


class AudioIntake:
    """One stream's audio as it arrives: decoded, the last `held_s` seconds held, arrival times kept."""

    def __init__(self, params: StreamParams, start: int, held_s: float) -> None:
        self._decoder = AudioDecoder(params.encoding, params.sample_rate_hz, params.channels)
        self._recent = RecentAudio(held_s, start)
        self._arrivals = Arrivals()
        self.samples = 0  # 16 kHz samples taken in

    def decode(self, chunk: bytes) -> np.ndarray:
        """A client's message as 16 kHz samples; a malformed one ends the stream with INVALID_ARGUMENT."""
        received = self._decoder.input_seconds
        try:
            samples = self._decoder.decode(chunk)
        except AudioFormatError as exc:
            raise StreamFailure(FailureCode.INVALID_ARGUMENT, str(exc)) from None
        metrics.AUDIO_RECEIVED_SECONDS.inc(self._decoder.input_seconds - received)
        return samples

    def flush(self) -> np.ndarray:
        return self._decoder.flush()

    def take(self, samples: np.ndarray, arrived: float) -> None:
        """Hold decoded samples that arrived at `arrived`."""
        self.samples += samples.shape[0]
        self._recent.append(samples)
        if samples.shape[0]:
            self._arrivals.add(self._recent.end, arrived)

    def arrived_at(self, position: int) -> float:
        return self._arrivals.at(position)

    def forget_arrivals(self, before: int) -> None:
        self._arrivals.forget(before)

    def held(self, start: int, end: int) -> np.ndarray | None:
        """Samples [start, end) of the stream, or None when they are no longer held."""
        return self._recent.get(start, end)
