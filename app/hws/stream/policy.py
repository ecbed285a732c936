"""The session's decisions, apart from the session: when to decode a partial and from where, when to start
a final early, when a final hears the previous utterance, when the stream's age ends it.

Pure: each method answers from what it is given (positions in samples, times from the session's clock)
and returns what to do; nothing here submits a decode, reads a clock or sleeps. The session
(hws.stream.session) carries the answers out, and tests drive the policy with numbers alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from hws.asr.types import Context
from hws.audio import TARGET_RATE
from hws.stream.outputs import FailureCode, StreamAged, StreamFailure
from hws.stream.vad import SpeechEnd

MIN_PARTIAL_AUDIO_S = 0.5
# A partial reads the utterance's tail from this long before the audio that last extended its stable
# text (so the tail overlaps the last committed words), once that skips at least PARTIAL_TAIL_MIN_SKIP_S.
PARTIAL_TAIL_OVERLAP_S = 3.0
PARTIAL_TAIL_MIN_SKIP_S = 2.0
PARTIAL_SILENCE_CUTOFF_MS = 240  # no partials once the speaker has paused this long: the final is near
# A final hears the stream from the previous utterance's start (see WhisperBackend.decode), if that fits this.
CONTEXT_WINDOW_S = 28.0


@dataclasses.dataclass(frozen=True)
class PartialProgress:
    """What the utterance's partials have done so far."""

    requested_len: int  # utterance samples covered by the last partial asked for (0: none yet)
    shown: bool  # a partial with words was sent
    committed_words: int  # words the stabiliser has committed
    committed_at: int  # the utterance length of the partial that last extended the stable text


@dataclasses.dataclass(frozen=True)
class Speculation:
    """What to do with the final begun early in a pause: drop the one under way, start a new one."""

    drop: bool
    start: bool


KEEP = Speculation(drop=False, start=False)


class StreamPolicy:
    def __init__(
        self, partial_interval_ms: int, opened_at: float, max_age_s: float = 0.0, max_age_overrun_s: float = 0.0
    ) -> None:
        self.partial_interval = partial_interval_ms * TARGET_RATE // 1000
        self.max_age_s = max_age_s
        self.max_age_overrun_s = max_age_overrun_s
        # Deadlines on the session's clock (a load balancer's drain counts wall time): from the first, the
        # stream ends at its next pause; at the second, wherever it is. None: no age limit.
        self.aged_at = opened_at + max_age_s if max_age_s else None
        self.hard_end_at = opened_at + max_age_s + max_age_overrun_s if max_age_s else None

    # -- partials -----------------------------------------------------------
    def partial_start(self, progress: PartialProgress, audio_len: int, trailing_silence_ms: int) -> int | None:
        """Where in the utterance a partial decoded now begins (0, or a tail), or None for no partial now.

        After a first partial, until the utterance shows words, partials come twice as often: Whisper
        often hears nothing in the first moments of speech, and the reader waits for the first words most.
        """
        hurry = progress.requested_len and not progress.shown
        interval = self.partial_interval // 2 if hurry else self.partial_interval
        if (
            audio_len < MIN_PARTIAL_AUDIO_S * TARGET_RATE
            or audio_len - progress.requested_len < interval
            or trailing_silence_ms >= PARTIAL_SILENCE_CUTOFF_MS
        ):
            return None
        tail_start = progress.committed_at - round(PARTIAL_TAIL_OVERLAP_S * TARGET_RATE)
        if progress.committed_words and tail_start >= PARTIAL_TAIL_MIN_SKIP_S * TARGET_RATE:
            return tail_start
        return 0

    # -- finals ---------------------------------------------------------------
    @staticmethod
    def speculation(tentative_end: int | None, under_way: int | None, idle_worker: Callable[[], bool]) -> Speculation:
        """Start the final's decode early, in a pause that has reached the VAD's kept pad, on an idle worker.

        The utterance's end is then fixed unless speech resumes: if the pause lasts to the endpoint
        (`endpoint_silence_ms` - `speech_pad_ms` later) the final is already under way; if speech
        resumes, the decode is dropped, and it only took a worker that had nothing else to do.
        `under_way` is the end of the one begun already, if any.
        """
        if tentative_end is None or under_way == tentative_end:
            return KEEP
        return Speculation(drop=under_way is not None, start=idle_worker())

    @staticmethod
    def context(previous: SpeechEnd | None, event: SpeechEnd) -> tuple[int, Context] | None:
        """Where a final's audio begins and what of it is context, when it hears the previous utterance.

        None: the utterance is decoded alone (the first one, or the previous began too long before).
        """
        if previous is None or event.end - previous.start > CONTEXT_WINDOW_S * TARGET_RATE:
            return None
        return previous.start, Context(event.start - previous.start, previous.voiced_end - previous.start)

    # -- the age limit ------------------------------------------------------
    @staticmethod
    def past(deadline: float | None, now: float) -> bool:
        return deadline is not None and now >= deadline

    def aged(self, now: float) -> bool:
        """Past the age: the stream ends at its next pause."""
        return self.past(self.aged_at, now)

    def overrun(self, now: float) -> bool:
        """Past the age and its overrun: the stream ends wherever it is."""
        return self.past(self.hard_end_at, now)

    def read_timeout(self, idle_timeout_s: float, now: float) -> float:
        """How long to wait for the client's next message: a client that goes quiet still ends at the hard end."""
        if self.hard_end_at is None:
            return idle_timeout_s
        return max(0.0, min(idle_timeout_s, self.hard_end_at - now))

    def aged_failure(self, position: int) -> StreamAged:
        """How the stream ends at a pause past its age: every sample before `position` is final."""
        return StreamAged(
            f"the stream reached its maximum age ({self.max_age_s:g} s); resume from final_offset_s on a new stream",
            position,
        )

    def overrun_failure(self, audio_received: bool = True) -> StreamFailure:
        """Past the age and its overrun without a pause: ends like a drain, the utterance finalised up to here."""
        if not audio_received:
            return StreamFailure(
                FailureCode.MAX_AGE,
                f"the stream reached its maximum age ({self.max_age_s:g} s) and "
                f"{self.max_age_overrun_s:g} s more without sending any audio; open a new stream when there is audio",
                retry_after_s=0.0,
            )
        return StreamFailure(
            FailureCode.MAX_AGE,
            f"the stream reached its maximum age ({self.max_age_s:g} s) and had no pause in "
            f"{self.max_age_overrun_s:g} s more; finals for the audio received were sent; "
            "resume from final_offset_s on a new stream",
            retry_after_s=0.0,
        )

    def ending(self) -> None:
        """The stream is ending anyway: its last audio is finalised, whatever its age."""
        self.aged_at = self.hard_end_at = None
