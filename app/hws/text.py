"""How words compare, for the stabiliser (stream) and the quality checks (asr) alike."""

from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"[^\w']+")


def word_key(word: str) -> str:
    # Agreement ignores case and punctuation: "hours," and "hours" agree.
    return _PUNCTUATION.sub("", word.lower())


def has_words(text: str) -> bool:
    """Whether a transcript says anything: Whisper hears a tone or hum as "." or "...", which says nothing."""
    return any(character.isalnum() for character in text)
