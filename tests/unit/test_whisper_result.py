"""hws.asr.whisper.backend: faster-whisper segments to a DecodeResult (invented words dropped, context, flags)."""

from __future__ import annotations

from faster_whisper.transcribe import Segment
from faster_whisper.transcribe import Word as FwWord

from hws.asr.quality import Flag
from hws.asr.types import DecodeResult
from hws.asr.whisper.backend import _result


def _segment(start: float, end: float, words: list[tuple[str, float, float]], **signals: float) -> Segment:
    return Segment(
        id=0, seek=0, start=start, end=end, text=" ".join(w for w, _, _ in words), tokens=[],
        avg_logprob=signals.get("avg_logprob", -0.2), compression_ratio=signals.get("compression_ratio", 1.2),
        no_speech_prob=signals.get("no_speech_prob", 0.01), temperature=signals.get("temperature", 0.0),
        words=[FwWord(start=s, end=e, word=" " + w, probability=0.9) for w, s, e in words],
    )  # fmt: skip


def _decoded(segments: list[Segment], speech_end_s: float, context: tuple[float, float] | None = None) -> DecodeResult:
    return _result(segments, speech_end_s, "en", 1.0, context)


def test_words_in_the_silence_after_the_audio_are_dropped() -> None:
    speech = _segment(0.0, 2.0, [("Hello", 0.3, 0.7), ("world.", 0.8, 1.4)])
    invented = _segment(2.9, 3.5, [("Thank", 2.95, 3.2), ("you.", 3.2, 3.5)])
    result = _decoded([speech, invented], 3.0)
    assert result.text == "Hello world."
    assert [w.word for w in result.words] == ["Hello", "world."]


def test_a_second_reading_squeezed_into_the_end_is_dropped_and_flagged() -> None:
    first = [("I", 0.0, 0.3), ("am", 0.3, 0.6), ("in", 0.6, 0.9), ("a", 0.9, 1.0), ("room.", 1.0, 1.6)]
    again = [(w, 1.6 + (s - 0.0) / 5, 1.6 + (e - 0.0) / 5) for w, s, e in first]  # a fifth of the time
    result = _decoded([_segment(0.0, 2.0, first + again)], 3.0)
    assert result.text == "I am in a room."
    assert Flag.REPETITION in result.quality.flags
    said_twice = [(w, 1.6 + s, 1.6 + e) for w, s, e in first]  # the speaker really said it twice
    result = _decoded([_segment(0.0, 3.5, first + said_twice)], 4.0)
    assert result.text == "I am in a room. I am in a room."


def test_an_invented_sign_off_after_the_last_sentence_is_dropped() -> None:
    said = [("He", 0.2, 0.4, 0.9), ("decided", 0.4, 0.9, 0.95), ("instead.", 0.9, 1.5, 0.94)]
    signed_off = _segment(0.0, 2.0, [w[:3] for w in said] + [("Thank", 1.6, 1.8)])
    signed_off.words[-1].probability = 0.01
    assert _decoded([signed_off], speech_end_s=2.5).text == "He decided instead."
    unsure_but_spoken = _segment(0.0, 2.0, [("the", 0.2, 0.4), ("cool", 0.4, 0.8), ("grass.", 0.8, 1.3)])
    unsure_but_spoken.words[-1].probability = 0.12  # no finished sentence before it: kept
    assert _decoded([unsure_but_spoken], speech_end_s=2.5).text == "the cool grass."


def test_a_decode_heard_with_context_keeps_the_utterances_words_in_its_times() -> None:
    # The previous utterance's speech ends at 1.5 s, this one starts (pre-roll included) at 2.0 s.
    said = [("Small", 0.2, 0.5), ("children", 0.5, 1.0), ("came.", 1.0, 1.9)]
    previous = _segment(0.0, 1.6, said)
    # Whisper times the segment's first word from the silence before it.
    utterance = _segment(1.5, 4.0, [("The", 1.5, 2.2), ("grass", 2.5, 2.9), ("was", 2.9, 3.1), ("wet.", 3.1, 3.6)])
    result = _decoded([previous, utterance], speech_end_s=4.0, context=(2.0, 1.5))
    assert result.text == "The grass was wet."
    assert [(w.word, round(w.start, 2)) for w in result.words][:2] == [("The", 0.0), ("grass", 0.5)]
    # One segment over both utterances: split by word.
    merged = _segment(0.0, 4.0, [*said, ("The", 2.1, 2.5), ("grass", 2.5, 2.9)])
    assert _decoded([merged], speech_end_s=4.0, context=(2.0, 1.5)).text == "The grass"


def test_a_decode_that_does_not_read_its_context_as_context_is_marked() -> None:
    # Context: "This is the other aligner." ends at 2.0 s; the utterance starts at 2.5 s.
    said = [("This", 0.1, 0.4), ("is", 0.4, 0.6), ("the", 0.6, 0.8), ("other", 0.8, 1.2), ("aligner.", 1.2, 1.9)]
    read_well = [_segment(0.0, 2.0, said), _segment(2.5, 4.0, [("Montreal", 2.6, 3.1), ("forced.", 3.1, 3.8)])]
    assert not _decoded(read_well, speech_end_s=4.0, context=(2.5, 2.0)).misreads_context
    # The previous utterance's words, timed over this one's audio: nothing read in the context.
    shifted = [_segment(2.5, 4.5, [(w, 2.5 + s, 2.5 + e) for w, s, e in said])]
    result = _decoded(shifted, speech_end_s=4.0, context=(2.5, 2.0))
    assert result.text.startswith("This is the") and result.misreads_context
    # Read in the context, then read again as the utterance.
    again = [_segment(0.0, 2.0, said), _segment(2.5, 4.0, [("This", 2.6, 2.9), ("is", 2.9, 3.2), ("it.", 3.2, 3.6)])]
    assert _decoded(again, speech_end_s=4.0, context=(2.5, 2.0)).misreads_context


def test_symbols_are_words_and_punctuation_is_not() -> None:
    said = [("It", 0.1, 0.3), ("rose", 0.3, 0.6), ("7.7", 0.6, 1.0), ("%", 1.0, 1.2), ("to", 1.2, 1.3)]
    said += [("$", 1.3, 1.4), ("5", 1.4, 1.6), ("...", 1.6, 1.7)]
    assert [w.word for w in _decoded([_segment(0.0, 2.0, said)], 3.0).words] == [
        "It",
        "rose",
        "7.7",
        "%",
        "to",
        "$",
        "5",
    ]


def test_quality_flags_follow_whispers_thresholds() -> None:
    doubtful = _segment(0.0, 1.0, [("Okay.", 0.1, 0.5)], no_speech_prob=0.9, avg_logprob=-1.3, temperature=0.4)
    flags = _decoded([doubtful], 2.0).quality.flags
    assert set(flags) == {Flag.LIKELY_NO_SPEECH, Flag.LOW_CONFIDENCE, Flag.TEMPERATURE_FALLBACK}
    clean = _segment(0.0, 1.0, [("Okay.", 0.1, 0.5)])
    assert _decoded([clean], 2.0).quality.flags == ()
