"""How words compare, for the stabiliser (stream) and the quality checks (asr) alike."""

from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"[^\w']+")


def word_key(word: str) -> str:
    # Agreement ignores case and punctuation: "hours," and "hours" agree.
    return _PUNCTUATION.sub("", word.lower())
