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

Once words are committed, a partial need not read the utterance from its start:
a decode of its last seconds (a tail), begun a few seconds before the audio that
last extended the commitment, overlaps the last committed words; the tail is
aligned to them and continues after them. A decode then costs the same however
long the utterance has run, where reading it all grew with every partial.
"""

from __future__ import annotations

import dataclasses
import difflib

from hws.text import word_key


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


TAIL_MATCH_WORDS = 8  # the committed words a tail is aligned to
TAIL_MATCH_REACH = 2  # the alignment must reach to within this many words of the committed end


def _tail_continuation(committed: list[str], words: list[str]) -> list[str] | None:
    """The words of a tail decode after the committed ones; None when it does not overlap their end."""
    done = [word_key(w) for w in committed[-TAIL_MATCH_WORDS:]]
    matcher = difflib.SequenceMatcher(a=done, b=[word_key(w) for w in words], autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    if not blocks or blocks[-1].a + blocks[-1].size < len(done) - TAIL_MATCH_REACH:
        return None
    last = blocks[-1]
    return words[last.b + last.size + (len(done) - last.a - last.size) :]


class LocalAgreement:
    """One utterance's stabiliser. Pure: hypotheses in, stable prefix out."""

    def __init__(self) -> None:
        self._committed: list[str] = []
        self._previous: list[str] = []
        self._shown: list[str] = []

    @property
    def committed_text(self) -> str:
        return " ".join(self._committed)

    @property
    def committed_words(self) -> int:
        return len(self._committed)

    def update(self, hypothesis: str, committable: bool = True, tail: bool = False) -> Stabilized:
        """Add the newest hypothesis; `committable` False keeps it out of the agreement.

        `tail`: the hypothesis read only the utterance's last seconds. One that does not overlap the
        committed words' end changes nothing: what was shown stays.
        """
        if tail and self._committed:
            continuation = _tail_continuation(self._committed, hypothesis.split())
            if continuation is None:
                return self._stabilized(self._shown or self._committed)
        else:
            continuation = _continuation(self._committed, hypothesis.split())
        words = self._committed + continuation
        agreed = len(self._committed)
        while agreed < min(len(words), len(self._previous)) and word_key(words[agreed]) == word_key(
            self._previous[agreed]
        ):
            agreed += 1
        self._committed = words[:agreed]
        self._previous = words if committable else []
        self._shown = words
        return self._stabilized(words)

    def _stabilized(self, words: list[str]) -> Stabilized:
        stable_text = " ".join(self._committed)
        return Stabilized(" ".join(words), stable_text, len(self._committed) / len(words) if words else 1.0)

    def revises(self, final_text: str) -> bool:
        """True when the final does not begin with the committed words (ignoring case and punctuation)."""
        return revises(final_text, self.committed_text)


def revises(final_text: str, stable_text: str) -> bool:
    """True when `final_text` does not begin with the words of `stable_text` (ignoring case and punctuation)."""
    stable = [word_key(w) for w in stable_text.split()]
    return [word_key(w) for w in final_text.split()[: len(stable)]] != stable
