"""Word error rates with substitutions, deletions and insertions after Whisper's English normaliser, and
runs of words a transcript says twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any


@cache
def _normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer

    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normaliser, as every word error rate here applies it."""
    return _normalizer()(text)


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(normalize(reference), normalize(hypothesis) or "<empty>"))


def corpus_wer(pairs: Iterable[tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs (at least one)."""
    import jiwer

    refs, hyps = zip(*[(normalize(r), normalize(h) or "<empty>") for r, h in pairs], strict=True)
    return float(jiwer.wer(list(refs), list(hyps)))


@dataclass(frozen=True)
class Errors:
    wer: float
    substitutions: int
    deletions: int
    insertions: int
    words: int  # in the reference

    def figures(self) -> dict[str, Any]:
        """As the benchmark reports them."""
        return {
            "wer": round(self.wer, 4),
            "substitutions": self.substitutions,
            "deletions": self.deletions,
            "insertions": self.insertions,
            "reference_words": self.words,
        }


def corpus_errors(pairs: Iterable[tuple[str, str]]) -> Errors:
    """Corpus WER with substitutions, deletions and insertions over (reference, hypothesis) pairs."""
    import jiwer

    refs, hyps = zip(*[(normalize(r), normalize(h) or "<empty>") for r, h in pairs], strict=True)
    out = jiwer.process_words(list(refs), list(hyps))
    words = out.hits + out.substitutions + out.deletions
    return Errors(float(out.wer), out.substitutions, out.deletions, out.insertions, words)


def errors(reference: str, hypothesis: str) -> Errors:
    return corpus_errors([(reference, hypothesis)])


def repeated_runs(texts: Iterable[str], reference: str = "") -> list[str]:
    """Runs of 4 or more words said twice in a row in any text, unless the reference says them twice."""
    from hws.asr.quality import repeated_run

    said = f" {normalize(reference)} "
    found = []
    for text in texts:
        words = normalize(text).split()
        run = repeated_run(words)
        if run is not None:
            doubled = " ".join(words[run[0] : run[0] + 2 * run[1]])
            if f" {doubled} " not in said:
                found.append(doubled)
    return found
