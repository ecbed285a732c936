"""LocalAgreement-2 stabilisation of partial hypotheses, over independent decodes.

Every decode of an utterance (partials and the final) reads the utterance's
audio alone, with nothing forced: forcing committed words into later decodes
as a decoder prefix made finals worse than decoding the audio alone (whole
sentences read twice, words invented after the speech), so partials only
ever affect what the reader sees, never the final.

The words that two consecutive hypotheses agree on, from the start, are
committed: `stable_text`. Later partials never take them back: a new
hypothesis is aligned to the committed words and only its continuation is
shown after them. The final is the record and may differ from what partials
committed; `revises` tells when it does (counted, and flagged on the result).

A hypothesis decoded from very little audio is shown but takes no part in the
agreement: on under two seconds Whisper often guesses the first words wrongly
and consistently (measured on tiny.en).
"""

from __future__ import annotations

import dataclasses
import difflib
import re

_PUNCTUATION = re.compile(r"[^\w']+")


def word_key(word: str) -> str:
    # Agreement ignores case and punctuation: "hours," and "hours" agree.
    return _PUNCTUATION.sub("", word.lower())


@dataclasses.dataclass(frozen=True)
class Stabilized:
    text: str
    stable_text: str
    stability: float


def _continuation(committed: list[str], words: list[str]) -> list[str]:
    """The words of `words` that come after the committed ones, by word alignment."""
    if not committed:
        return words
    keys = [word_key(w) for w in words]
    done = [word_key(w) for w in committed]
    if keys[: len(done)] == done:
        return words[len(done) :]
    # The hypothesis reworded some committed words: continue after the last committed word it matches.
    matcher = difflib.SequenceMatcher(a=done, b=keys, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks:
        return words[len(done) :]
    last = blocks[-1]
    # Committed words after the last match are taken to cover as many hypothesis words.
    return words[last.b + last.size + (len(done) - last.a - last.size) :]


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
        words = self._committed + _continuation(self._committed, hypothesis.split())
        agreed = len(self._committed)
        while agreed < min(len(words), len(self._previous)) and word_key(words[agreed]) == word_key(
            self._previous[agreed]
        ):
            agreed += 1
        self._committed = words[:agreed]
        self._previous = words if committable else []
        stable_text = " ".join(self._committed)
        return Stabilized(" ".join(words), stable_text, len(self._committed) / len(words) if words else 1.0)

    def revises(self, final_text: str) -> bool:
        """True when the final does not begin with the committed words (ignoring case and punctuation)."""
        return revises(final_text, self.committed_text)


def revises(final_text: str, stable_text: str) -> bool:
    """True when `final_text` does not begin with the words of `stable_text` (ignoring case and punctuation)."""
    stable = [word_key(w) for w in stable_text.split()]
    return [word_key(w) for w in final_text.split()[: len(stable)]] != stable
