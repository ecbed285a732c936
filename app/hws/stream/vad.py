"""Voice activity segmentation: cuts a 16 kHz stream into utterances with webrtcvad.

Pure: samples in, segment events out; no gRPC, no model, no clock. Positions
are sample indices at 16 kHz from the start of the stream.

- Speech starts when most frames of a short trigger window are voiced; the
  utterance then begins `pad_ms` before the first voiced frame (pre-roll ring
  buffer), so the first phoneme is not clipped.
- It ends after `endpoint_silence_ms` of unvoiced frames, keeping `pad_ms` of
  the trailing silence so the last phoneme is not clipped either.
- An utterance that reaches `max_utterance_s` is cut at its quietest recent
  point (the last unvoiced frame in the final few seconds, else right there),
  and the rest carries on as a new utterance: nothing exceeds Whisper's window.
- Utterances with less than `min_speech_ms` of voiced audio (a click, a cough)
  are reported as too short instead of being sent to the model.
- `reconfigure` changes the aggressiveness, the endpoint and the forced cut
  from the next utterance on: the one in progress ends under the settings it
  started with.
"""

from __future__ import annotations

import collections
import dataclasses
import enum

import numpy as np
import webrtcvad

from hws.audio import TARGET_RATE, float_to_pcm16

TRIGGER_WINDOW_MS = 150
TRIGGER_RATIO = 0.6
CUT_SEARCH_S = 3.0


class EndReason(enum.Enum):
    SILENCE = "silence"
    MAX_LENGTH = "max_length"
    END_OF_STREAM = "end_of_stream"


@dataclasses.dataclass(frozen=True)
class Bounds:
    """An inclusive range: the server's settings and a client's config are checked against the same one."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high  # false for NaN

    def __str__(self) -> str:
        return f"{self.low:g}-{self.high:g}"


AGGRESSIVENESS = Bounds(0, 3)  # webrtcvad's modes
ENDPOINT_SILENCE_MS = Bounds(100, 5000)
MAX_UTTERANCE_S = Bounds(1, 30)  # Whisper's window is 30 s


@dataclasses.dataclass(frozen=True)
class VadParams:
    aggressiveness: int = 2
    frame_ms: int = 30
    endpoint_silence_ms: int = 500
    max_utterance_s: float = 25.0
    min_speech_ms: int = 250
    pad_ms: int = 300


@dataclasses.dataclass(frozen=True)
class SpeechStart:
    start: int  # first sample of the utterance (pre-roll included)


@dataclasses.dataclass(frozen=True)
class SpeechEnd:
    start: int
    end: int  # one past the last sample
    audio: np.ndarray  # float32 16 kHz, samples [start, end)
    voiced_ms: int
    reason: EndReason
    voiced_end: int  # one past the last voiced frame: what follows it, the VAD heard as silence


@dataclasses.dataclass(frozen=True)
class SpeechDiscarded:
    """An utterance with too little voiced audio to be worth a decode."""

    start: int
    end: int
    voiced_ms: int


SegmenterEvent = SpeechStart | SpeechEnd | SpeechDiscarded


class _UtteranceAudio:
    """Audio of the utterance in progress, in one preallocated buffer."""

    def __init__(self, start: int, capacity: int) -> None:
        self.start = start
        self.buffer = np.empty(capacity, dtype=np.float32)
        self.length = 0
        self.voicing: list[bool] = []  # one flag per frame appended
        self.silence_frames = 0  # trailing run of unvoiced frames

    def append(self, frame: np.ndarray, voiced: bool) -> None:
        self.buffer[self.length : self.length + frame.shape[0]] = frame
        self.length += frame.shape[0]
        self.voicing.append(voiced)
        self.silence_frames = 0 if voiced else self.silence_frames + 1

    @property
    def audio(self) -> np.ndarray:
        return self.buffer[: self.length]


# What `Segmenter.reconfigure` may change; the rest shapes the segmenter's buffers for the whole stream.
CHANGEABLE = frozenset({"aggressiveness", "endpoint_silence_ms", "max_utterance_s"})


class Segmenter:
    def __init__(self, params: VadParams, start: int = 0) -> None:
        """`start`: stream position of the first sample fed (non-zero when a stream resumes)."""
        self._vad = webrtcvad.Vad(params.aggressiveness)
        self._frame = TARGET_RATE * params.frame_ms // 1000
        self._pad_frames = max(1, params.pad_ms // params.frame_ms)
        self._trigger_frames = max(1, TRIGGER_WINDOW_MS // params.frame_ms)
        self._apply(params)
        self._next: VadParams | None = None  # settings for the next utterance, once the current one ends
        self._pending = np.zeros(0, dtype=np.float32)  # less than one frame, not yet classified
        self._position = start  # stream sample index of the next frame
        # Before speech: the last frames with their voicing, for pre-roll and triggering.
        self._history: collections.deque[tuple[np.ndarray, bool]] = collections.deque(
            maxlen=self._pad_frames + self._trigger_frames
        )
        self._utterance: _UtteranceAudio | None = None

    def _apply(self, params: VadParams) -> None:
        self.params = params
        self._vad.set_mode(params.aggressiveness)
        self._endpoint_frames = max(1, params.endpoint_silence_ms // params.frame_ms)
        self._max_samples = int(params.max_utterance_s * TARGET_RATE)
        self._capacity = self._max_samples + self._frame

    def reconfigure(self, params: VadParams) -> None:
        """New settings from the next utterance on: now if none is in progress, else once it ends."""
        fixed = {
            field.name
            for field in dataclasses.fields(VadParams)
            if field.name not in CHANGEABLE and getattr(params, field.name) != getattr(self.params, field.name)
        }
        if fixed:
            raise ValueError(f"{', '.join(sorted(fixed))} cannot change mid-stream")
        if self._utterance is None:
            self._apply(params)
        else:
            self._next = params

    @property
    def trailing_silence_ms(self) -> int:
        """Unvoiced time at the end of the utterance in progress (0 when none is)."""
        return 0 if self._utterance is None else self._utterance.silence_frames * self.params.frame_ms

    @property
    def final_position(self) -> int:
        """Samples before this position can never belong to a future utterance."""
        if self._utterance is not None:
            return self._utterance.start
        return self._position - len(self._history) * self._frame  # the history may still become pre-roll

    def tentative_end(self) -> SpeechEnd | None:
        """The SpeechEnd the pause in progress will give if it lasts to the endpoint, else None.

        Known once the trailing silence reaches the kept pad: the end is then fixed, and only more
        speech before the endpoint can change it.
        """
        utterance = self._utterance
        if utterance is None or utterance.silence_frames < self._pad_frames:
            return None
        keep = utterance.length - (utterance.silence_frames - self._pad_frames) * self._frame
        event = self._end_event(utterance, keep, EndReason.SILENCE)
        return event if isinstance(event, SpeechEnd) else None

    def current(self) -> tuple[int, np.ndarray] | None:
        """Start and audio so far of the utterance in progress (a view; do not modify)."""
        if self._utterance is None:
            return None
        return self._utterance.start, self._utterance.audio

    def feed(self, samples: np.ndarray) -> list[SegmenterEvent]:
        if self._pending.shape[0]:
            samples = np.concatenate([self._pending, samples])
        whole = samples.shape[0] - samples.shape[0] % self._frame
        self._pending = samples[whole:].copy()
        events: list[SegmenterEvent] = []
        # One frame at a time: an utterance that ends here may change the aggressiveness for the next frame.
        for frame in samples[:whole].reshape(-1, self._frame):
            self._step(frame, self._vad.is_speech(float_to_pcm16(frame), TARGET_RATE), events)
            self._position += self._frame
        return events

    def finish(self) -> list[SegmenterEvent]:
        """End of stream: the utterance in progress ends with whatever audio is left."""
        events: list[SegmenterEvent] = []
        if self._utterance is not None:
            if self._pending.shape[0]:
                room = self._utterance.buffer.shape[0] - self._utterance.length
                self._utterance.append(self._pending[:room], voiced=False)
            events.append(self._close(self._utterance.length, EndReason.END_OF_STREAM))
        self._pending = np.zeros(0, dtype=np.float32)
        return events

    def _step(self, frame: np.ndarray, voiced: bool, events: list[SegmenterEvent]) -> None:
        utterance = self._utterance
        if utterance is None:
            self._history.append((frame, voiced))
            recent = list(self._history)[-self._trigger_frames :]
            if sum(v for _, v in recent) >= max(1, round(TRIGGER_RATIO * self._trigger_frames)):
                self._begin(events)
            return
        utterance.append(frame, voiced)
        if utterance.silence_frames >= self._endpoint_frames:
            keep = utterance.length - (utterance.silence_frames - self._pad_frames) * self._frame
            events.append(self._close(keep, EndReason.SILENCE))
        elif utterance.length + self._frame > self._max_samples:
            self._force_cut(utterance, events)

    def _force_cut(self, utterance: _UtteranceAudio, events: list[SegmenterEvent]) -> None:
        """Cut an utterance at its length limit; the audio after the cut carries on as the next utterance.

        Settings changed meanwhile apply from the cut: under a shorter limit the audio carried on may
        already exceed it, and is cut again until no piece does.
        """
        while True:
            cut_frames = self._cut_frames(utterance)
            events.append(self._close(cut_frames * self._frame, EndReason.MAX_LENGTH))
            rest_frames = len(utterance.voicing) - cut_frames
            if not rest_frames:
                return
            capacity = max(self._capacity, (rest_frames + 1) * self._frame)
            rest = _UtteranceAudio(utterance.start + cut_frames * self._frame, capacity)
            for index in range(cut_frames, len(utterance.voicing)):
                offset = index * self._frame
                rest.append(utterance.buffer[offset : offset + self._frame], utterance.voicing[index])
            self._utterance = rest
            events.append(SpeechStart(rest.start))
            if rest.length + self._frame <= self._max_samples:
                return
            utterance = rest

    def _begin(self, events: list[SegmenterEvent]) -> None:
        frames = list(self._history)
        first_voiced = next(i for i, (_, v) in enumerate(frames) if v)
        first = max(0, first_voiced - self._pad_frames)
        start = self._position + self._frame - (len(frames) - first) * self._frame
        utterance = _UtteranceAudio(start, self._capacity)
        for frame, voiced in frames[first:]:
            utterance.append(frame, voiced)
        utterance.silence_frames = 0
        self._history.clear()
        self._utterance = utterance
        events.append(SpeechStart(start))

    def _cut_frames(self, utterance: _UtteranceAudio) -> int:
        """Frames to keep at a forced cut: up to the last unvoiced frame of the final seconds within the limit."""
        frames = min(len(utterance.voicing), self._max_samples // self._frame)
        earliest = max(1, frames - int(CUT_SEARCH_S * 1000) // self.params.frame_ms)
        for index in range(frames - 1, earliest - 1, -1):
            if not utterance.voicing[index]:
                return index + 1
        return frames

    def _close(self, keep: int, reason: EndReason) -> SpeechEnd | SpeechDiscarded:
        utterance = self._utterance
        assert utterance is not None
        keep = max(0, min(keep, utterance.length))
        if reason is not EndReason.MAX_LENGTH:
            # Trailing silence beyond the kept pad seeds the pre-roll of the next utterance.
            self._history.clear()
            tail = utterance.audio[keep:]
            for offset in range(0, tail.shape[0] - self._frame + 1, self._frame):
                self._history.append((tail[offset : offset + self._frame], False))
        self._utterance = None
        event = self._end_event(utterance, keep, reason)
        if self._next is not None:  # the utterance ended under its own settings; the next one starts under these
            self._apply(self._next)
            self._next = None
        return event

    def _end_event(self, utterance: _UtteranceAudio, keep: int, reason: EndReason) -> SpeechEnd | SpeechDiscarded:
        voicing = utterance.voicing[: -(-keep // self._frame)]
        voiced_ms = sum(voicing) * self.params.frame_ms
        end = utterance.start + keep
        if voiced_ms < self.params.min_speech_ms:
            return SpeechDiscarded(utterance.start, end, voiced_ms)
        last_voiced = max(i for i, voiced in enumerate(voicing) if voiced)
        voiced_end = min(end, utterance.start + (last_voiced + 1) * self._frame)
        return SpeechEnd(utterance.start, end, utterance.audio[:keep], voiced_ms, reason, voiced_end)
