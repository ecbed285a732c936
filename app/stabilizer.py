"""LocalAgreement-2 stabilisation of partial hypotheses.

The words that two consecutive hypotheses of one utterance agree on, from the
start, are committed: they are stable and are never taken back. Later decodes
of the utterance are forced to start with the committed words (faster-whisper's
`prefix`), so later partials and the final keep them.

A hypothesis decoded from very little audio is shown but takes no part in the
agreement: on under two seconds Whisper often guesses the first words wrongly
and consistently (measured on tiny.en), and a forced prefix would carry the
guess into the final.

`repeats_prefix` recognises a decode that, forced through the committed words,
read the audio a second time; the engine then keeps only the committed words.
"""

from __future__ import annotations

import dataclasses
import re

_PUNCTUATION = re.compile(r"[^\w']+")
REREAD_MIN_WORDS = 3


def _key(word: str) -> str:
    # Agreement ignores case and punctuation: "hours," and "hours" agree.
    return _PUNCTUATION.sub("", word.lower())


@dataclasses.dataclass(frozen=True)
class Stabilized:
    text: str
    stable_text: str
    stability: float


class LocalAgreement:
    """One utterance's stabiliser. Pure: hypotheses in, stable prefix out."""

    def __init__(self) -> None:
        self._committed: list[str] = []
        self._previous: list[str] = []

    @property
    def committed_text(self) -> str:
        return " ".join(self._committed)

    def update(self, hypothesis: str, committable: bool = True) -> Stabilized:
        """Add the newest hypothesis; `committable` False keeps it out of the agreement."""
        words = hypothesis.split()
        # A hypothesis that does not start with the committed words (a decode
        # submitted before the last commit) keeps the committed words anyway.
        n = len(self._committed)
        if [_key(w) for w in words[:n]] != [_key(w) for w in self._committed]:
            words = self._committed + words[n:]
        agreed = n
        while agreed < min(len(words), len(self._previous)) and _key(words[agreed]) == _key(self._previous[agreed]):
            agreed += 1
        self._committed = words[:agreed]
        self._previous = words if committable else []
        stable_text = " ".join(self._committed)
        return Stabilized(" ".join(words), stable_text, len(self._committed) / len(words) if words else 1.0)


def repeats_prefix(prefix: str, text: str) -> bool:
    """True when `text` is the forced `prefix` followed only by the prefix's own words again.

    Forced through committed words that already cover the speech, the model sometimes reads the
    audio a second time (measured: jfk.flac streamed with partials ended "...for your country. Ask
    what you can do for your country."). A run of fewer than REREAD_MIN_WORDS words may be speech.
    """
    said, heard = [_key(w) for w in prefix.split()], [_key(w) for w in text.split()]
    rest = heard[len(said) :]
    if not said or heard[: len(said)] != said or len(rest) < REREAD_MIN_WORDS:
        return False
    cycles = said * (len(rest) // len(said) + 2)  # the prefix repeated, to find runs across its end
    return f" {' '.join(rest)} " in f" {' '.join(cycles)} "
