"""How sure a decode is, from Whisper's own signals, and which words no speech supports (pure).

The thresholds are Whisper's own (openai/whisper `transcribe()`, kept by
faster-whisper): no_speech_prob 0.6, avg_logprob -1.0, compression ratio 2.4.
Whisper already skips a window whose no_speech_prob is above 0.6 while its
avg_logprob is below -1.0; what passes that rule and still looks doubtful is
flagged, not hidden, so that a client can grey it out or drop it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol

from hws import metrics
from hws.text import word_key

NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4
REPEAT_MIN_WORDS = 4  # a shorter run said twice ("very very", "no no no") is ordinary speech
LOOP_MAX_WORDS = 4  # a run this short or shorter is a loop when it comes three times in a row
# A word Whisper starts this close to the end of the last voiced frame, or later, lies in what the VAD
# heard as silence (its pad, the encoder's margin): nobody spoke it ("Thank you." after real speech).
TRAILING_WORD_MARGIN_S = 0.05


SIGN_OFF_MAX_PROBABILITY = 0.2
_SENTENCE_END = (".", "?", "!")


class _ScoredWord(Protocol):
    word: str
    probability: float


class Flag(enum.Enum):
    LIKELY_NO_SPEECH = "LIKELY_NO_SPEECH"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    REPETITION = "REPETITION"
    TEMPERATURE_FALLBACK = "TEMPERATURE_FALLBACK"
    STABLE_TEXT_REVISED = "STABLE_TEXT_REVISED"


# Every flag's series from the start, at zero, so that rates and alerts see them before the first event.
for _flag in Flag:
    metrics.FINAL_FLAGS.labels(flag=_flag.value)


def repeated_run(words: Sequence[str], min_words: int = REPEAT_MIN_WORDS) -> tuple[int, int] | None:
    """(start, length) of the first run of `min_words` or more words that repeats right after itself.

    Words compare ignoring case and punctuation. None when there is no such run.
    """
    keys = [word_key(w) for w in words]
    for length in range(min_words, len(keys) // 2 + 1):
        for start in range(len(keys) - 2 * length + 1):
            if keys[start : start + length] == keys[start + length : start + 2 * length]:
                return start, length
    return None


def without_loop(text: str) -> str:
    """The text up to the end of the first copy of a run that repeats: 1-4 words three times in a row
    (the third copy may be cut short by the end of the text), or 4 or more words twice. Whisper loops
    like this on a second of audio or on noise.
    """
    words = text.split()
    keys = [word_key(w) for w in words]
    cut = len(words)
    for length in range(1, LOOP_MAX_WORDS + 1):
        for start in range(len(keys) - 2 * length):
            run = keys[start : start + length]
            third = keys[start + 2 * length : start + 3 * length]
            if any(run) and run == keys[start + length : start + 2 * length] and run[: len(third)] == third:
                cut = min(cut, start + length)
                break
    repeat = repeated_run(words)
    if repeat is not None:
        cut = min(cut, repeat[0] + repeat[1])
    return " ".join(words[:cut])


def flags(
    no_speech_prob: float, avg_logprob: float, compression_ratio: float, temperature: float, text: str
) -> list[Flag]:
    found = []
    if no_speech_prob > NO_SPEECH_THRESHOLD:
        found.append(Flag.LIKELY_NO_SPEECH)
    if avg_logprob < LOG_PROB_THRESHOLD:
        found.append(Flag.LOW_CONFIDENCE)
    if compression_ratio > COMPRESSION_RATIO_THRESHOLD or repeated_run(text.split()) is not None:
        found.append(Flag.REPETITION)
    if temperature > 0.0:
        found.append(Flag.TEMPERATURE_FALLBACK)
    return found


def without_invented_sign_off(words: list[_ScoredWord]) -> list[_ScoredWord]:
    """The words less a last sentence, after a finished one, whose every word the model gave under 0.2.

    Whisper's best-known invention is a short sign-off after the speech ("Thank you.", "Okay.",
    "Thanks."); on real recordings those words come with far lower probabilities than real last words
    (docs/interface.md, "No words where nobody spoke", gives the figures).
    """
    ends = [i for i, w in enumerate(words[:-1]) if w.word.strip().endswith(_SENTENCE_END)]
    if not ends:
        return words
    tail = words[ends[-1] + 1 :]
    if all(w.probability < SIGN_OFF_MAX_PROBABILITY for w in tail):
        return words[: ends[-1] + 1]
    return words
