"""Unit tests of the pure parts: audio decoding, VAD segmentation, LocalAgreement, quality rules, settings."""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper.transcribe import Segment
from faster_whisper.transcribe import Word as FwWord

from hws.asr.quality import Flag, repeated_run, without_loop
from hws.asr.types import DecodeResult
from hws.asr.whisper.backend import _result
from hws.audio import AudioDecoder, AudioFormatError, Encoding, RecentAudio
from hws.server.settings import ConfigError, Settings, env_name, load_settings
from hws.stream.stabilizer import LocalAgreement
from hws.stream.vad import EndReason, Segmenter, SpeechDiscarded, SpeechEnd, SpeechStart, VadParams
from tests import g711
from tests.helpers import FakeBackend, clip_audio, clip_pcm16


def test_mulaw_matches_g711_reference() -> None:
    codes = bytes(range(256))
    expected = np.array(g711.decode(codes)) / 32768.0
    decoder = AudioDecoder(Encoding.MULAW, 16000)
    decoded = np.concatenate([decoder.decode(codes), decoder.flush()])
    assert np.allclose(decoded, expected, atol=1e-6)


def test_the_g711_reference_encodes_each_codes_value_back_to_it() -> None:
    # Each but 0x7F: a negative zero, which decodes to 0 like 0xFF, and 0 encodes to 0xFF.
    for code in range(256):
        assert g711.linear_to_ulaw(g711.ulaw_to_linear(code)) == (0xFF if code == 0x7F else code)


def test_the_g711_reference_matches_audioop_where_python_still_has_it() -> None:
    audioop = pytest.importorskip("audioop", reason="audioop is gone from Python 3.13")
    codes = bytes(range(256))
    assert g711.decode(codes) == list(np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2"))
    every_sample = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert g711.encode(every_sample) == audioop.lin2ulaw(every_sample, 2)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_duration_across_chunk_boundaries(rate: int) -> None:
    pcm = clip_pcm16("jfk.flac", rate=rate)
    decoder = AudioDecoder(Encoding.LINEAR16, rate)
    pieces = [decoder.decode(pcm[i : i + 2 * 317]) for i in range(0, len(pcm), 2 * 317)] + [decoder.flush()]
    out = np.concatenate(pieces)
    assert abs(out.shape[0] - len(pcm) / 2 * 16000 / rate) <= 2
    direct = clip_audio("jfk.flac")
    n = min(out.shape[0], direct.shape[0])
    assert np.corrcoef(out[:n], direct[:n])[0, 1] > 0.98  # same signal, no clicks or shifts


def test_decoder_rejects_bad_audio() -> None:
    decoder = AudioDecoder(Encoding.LINEAR16, 16000, channels=2)
    with pytest.raises(AudioFormatError, match="empty"):
        decoder.decode(b"")
    with pytest.raises(AudioFormatError, match="multiple of 4 bytes"):
        decoder.decode(b"\x00" * 6)
    with pytest.raises(AudioFormatError, match="between 8000 and 48000"):
        AudioDecoder(Encoding.LINEAR16, 7999)


def segment(samples: np.ndarray, params: VadParams, chunk: int = 1234) -> list:
    segmenter = Segmenter(params)
    events = []
    for i in range(0, samples.shape[0], chunk):
        events += segmenter.feed(samples[i : i + chunk])
    return events + segmenter.finish()


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_dialogue_segments_into_its_six_utterances(frame_ms: int) -> None:
    audio = clip_audio("synth_dialogue_clean.wav")
    events = segment(audio, VadParams(frame_ms=frame_ms))
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    assert len(ends) == 6
    assert sum(isinstance(e, SpeechStart) for e in events) == 6
    for previous, current in itertools.pairwise(ends):
        assert previous.end <= current.start  # ordered, no overlap
    for end in ends:
        assert end.audio.shape[0] == end.end - end.start
        assert np.array_equal(end.audio, audio[end.start : end.end])  # exactly the stream's samples


def test_padding_keeps_speech_onset_and_forced_cut_bounds_length() -> None:
    audio = np.concatenate([np.zeros(16000, dtype=np.float32), clip_audio("ls_1221-135766-0001.wav")])
    events = segment(audio, VadParams(max_utterance_s=6.0, pad_ms=300))
    ends = [e for e in events if isinstance(e, SpeechEnd)]
    assert len(ends) >= 3
    assert all(e.end - e.start <= 6.0 * 16000 for e in ends)
    assert any(e.reason is EndReason.MAX_LENGTH for e in ends)
    # Speech begins at about 1.0 s; the pre-roll starts the utterance before it.
    assert 0.5 * 16000 <= ends[0].start <= 1.0 * 16000
    # Cuts are contiguous: no audio lost between a forced cut and the next utterance.
    for previous, current in itertools.pairwise(ends):
        if previous.reason is EndReason.MAX_LENGTH:
            assert current.start == previous.end


@pytest.mark.parametrize("click_ms", [30, 100])
def test_click_is_too_short_for_the_model(click_ms: int) -> None:
    rng = np.random.default_rng(0)
    audio = np.zeros(32000, dtype=np.float32)
    audio[16000 : 16000 + 16 * click_ms] = rng.uniform(-0.8, 0.8, 16 * click_ms).astype(np.float32)
    events = segment(audio, VadParams())  # server defaults
    assert not [e for e in events if isinstance(e, SpeechEnd)]
    assert [e for e in events if isinstance(e, SpeechDiscarded)]
    # The shortest real utterance in the eval set ("experience proves this", 2 s) is kept.
    speech = clip_audio("ls_2830-3980-0043.wav")
    assert [e for e in segment(speech, VadParams()) if isinstance(e, SpeechEnd)]


def test_a_pause_tells_the_end_it_will_give_before_the_endpoint() -> None:
    speech = clip_audio("jfk.flac")
    audio = np.concatenate([speech, np.zeros(16_000, np.float32)])
    segmenter, told, ends = Segmenter(VadParams()), {}, []
    for offset in range(0, audio.shape[0], 160):
        ends += [e for e in segmenter.feed(audio[offset : offset + 160]) if isinstance(e, SpeechEnd)]
        if (tentative := segmenter.tentative_end()) is not None:
            told.setdefault((tentative.start, tentative.end), tentative)
    by_silence = [e for e in ends if e.reason is EndReason.SILENCE]
    assert by_silence
    # Every end that silence gave was told before it came, the same in every field.
    for end in by_silence:
        early = told[(end.start, end.end)]
        assert early.voiced_end == end.voiced_end and np.array_equal(early.audio, end.audio)


def test_vad_settings_changed_in_an_utterance_apply_from_the_next() -> None:
    audio = clip_audio("synth_dialogue_clean.wav")[: 23 * 16000]  # three utterances
    before = [e for e in segment(audio, VadParams()) if isinstance(e, SpeechEnd)]
    assert len(before) == 3
    segmenter = Segmenter(VadParams())
    events = segmenter.feed(audio[: round(2.6 * 16000)])
    assert segmenter.current() is not None  # an utterance is in progress
    segmenter.reconfigure(VadParams(endpoint_silence_ms=3000, aggressiveness=3))
    assert segmenter.params.endpoint_silence_ms == 500, "the utterance in progress keeps its settings"
    events += segmenter.feed(audio[round(2.6 * 16000) :])  # one feed: the change comes inside it
    ends = [e for e in events + segmenter.finish() if isinstance(e, SpeechEnd)]
    # The first ends where it did; the 3 s endpoint then joins the second and third (a 1 s pause between).
    assert (ends[0].start, ends[0].end) == (before[0].start, before[0].end)
    assert len(ends) == 2 and ends[1].start == before[1].start and ends[1].end > before[2].start
    assert segmenter.params.endpoint_silence_ms == 3000
    # The aggressiveness too: the utterance in progress ends where it would under the old one throughout, the
    # later ones where they would under the new one (the two differ by a few frames on this clean speech).
    least, most = ([e for e in segment(audio, VadParams(aggressiveness=a)) if isinstance(e, SpeechEnd)] for a in (0, 3))
    assert least[0].end != most[0].end and least[2].end != most[2].end
    segmenter = Segmenter(VadParams(aggressiveness=0))
    events = segmenter.feed(audio[: round(2.6 * 16000)])
    segmenter.reconfigure(VadParams(aggressiveness=3))
    events += segmenter.feed(audio[round(2.6 * 16000) :])
    ends = [e for e in events + segmenter.finish() if isinstance(e, SpeechEnd)]
    assert [(e.start, e.end) for e in ends] == [(least[0].start, least[0].end)] + [(e.start, e.end) for e in most[1:]]
    # Between utterances a change applies at once.
    idle = Segmenter(VadParams())
    idle.feed(np.zeros(16000, np.float32))
    idle.reconfigure(VadParams(endpoint_silence_ms=800))
    assert idle.params.endpoint_silence_ms == 800
    with pytest.raises(ValueError, match="frame_ms cannot change"):
        idle.reconfigure(VadParams(frame_ms=10))


def test_a_shorter_forced_cut_set_in_an_utterance_cuts_every_later_piece_to_it() -> None:
    audio = clip_audio("ls_1221-135766-0001.wav")  # about 16 s with few pauses
    segmenter = Segmenter(VadParams(max_utterance_s=6.0))
    events = segmenter.feed(audio[: 3 * 16000])
    assert segmenter.current() is not None  # an utterance is in progress
    segmenter.reconfigure(VadParams(max_utterance_s=1.0))
    for offset in range(3 * 16000, audio.shape[0], 4000):
        events += segmenter.feed(audio[offset : offset + 4000])
    ends = [e for e in events + segmenter.finish() if isinstance(e, SpeechEnd | SpeechDiscarded)]
    lengths = [(e.end - e.start) / 16000 for e in ends]
    assert ends[0].reason is EndReason.MAX_LENGTH and 1.0 < lengths[0] <= 6.0, lengths
    assert len(ends) > 5 and all(length <= 1.0 for length in lengths[1:]), lengths
    for previous, current in itertools.pairwise(ends):
        assert current.start == previous.end, "forced cuts lose no audio"


def test_a_resumed_stream_starts_with_the_settings_in_force_and_sends_later_updates_again() -> None:
    from hws.client.resume import _SentAudio
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    applied, refused = pb.ConfigUpdate.APPLIED, pb.ConfigUpdate.REFUSED
    first, second, third, fourth = (
        pb.StreamingConfig(recognition=pb.RecognitionConfig(endpoint_silence_ms=ms)) for ms in (200, 300, 400, 600)
    )
    sent = _SentAudio(32000, 2, first)  # 16 kHz LINEAR16
    second_of_audio = b"\0" * 32000
    sent.add(second_of_audio)
    second_sent = sent.update(second)  # at 1 s
    sent.add(second_of_audio)
    third_sent = sent.update(third)  # at 2 s
    sent.add(second_of_audio)
    fourth_sent = sent.update(fourth)  # at 3 s
    sent.add(second_of_audio)
    assert sent.acknowledged(second_sent, applied) and sent.acknowledged(third_sent, refused)
    assert sent.acknowledged(fourth_sent, applied)
    sent.finalised(2.5)
    offset_s, audio, settings, again = sent.snapshot()
    # Behind the final offset: the applied update is the settings in force, the refused one is gone.
    assert (offset_s, len(audio), settings) == (2.5, 48000, second)
    # Ahead of it: sent again at its place in the audio sent again; its second answer is not news.
    assert again == [(16000, fourth_sent)]
    assert not sent.acknowledged(fourth_sent, applied)
    # An update not yet answered blocks nothing that came before it and is sent again too.
    fifth_sent = sent.update(first)
    sent.finalised(4.0)
    assert sent.snapshot()[2:] == (fourth, [(0, fifth_sent)])


def test_local_agreement_commits_only_agreed_prefix_and_never_retracts() -> None:
    stabilizer = LocalAgreement()
    assert stabilizer.update("the cat").stable_text == ""
    first = stabilizer.update("The cat sat on")
    assert first.stable_text == "The cat" and first.stability == 0.5
    second = stabilizer.update("the bat sat on a mat")  # contradicts the committed words
    assert second.text.startswith("The cat") and second.stable_text.startswith("The cat")
    assert stabilizer.committed_text.startswith("The cat")


def test_a_tail_decode_continues_after_the_committed_words_it_overlaps() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("one two three four five six")
    assert stabilizer.update("one two three four five six seven.").stable_text == "one two three four five six"
    # The tail began mid-word, a few seconds before the committed end.
    tail = stabilizer.update("ive six seven eight", tail=True)
    assert tail.text == "one two three four five six seven eight"
    assert tail.stable_text == "one two three four five six seven"
    # A tail that does not reach the committed words' end cannot be placed: what was shown stays.
    assert stabilizer.update("entirely other words", tail=True) == tail
    assert stabilizer.update("three four", tail=True) == tail
    assert stabilizer.update("six seven eight nine", tail=True).stable_text.endswith("seven eight")


def test_short_audio_hypotheses_do_not_commit() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("that's how this", committable=False)
    assert stabilizer.update("that's how this cop", committable=True).stable_text == ""
    assert stabilizer.update("That's how this cop collected").stable_text == "That's how this cop"


def test_later_hypotheses_continue_after_the_committed_words_they_reword() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("Boats full of men")
    assert stabilizer.update("Boats full of men and women").stable_text == "Boats full of men"
    # An independent decode spells a committed word differently: its continuation follows the committed words.
    reworded = stabilizer.update("Botes full of men and women in business suits")
    assert reworded.text == "Boats full of men and women in business suits"
    assert reworded.stable_text == "Boats full of men and women"
    # A decode that dropped a committed word still continues after them, nothing read twice.
    shorter = stabilizer.update("Boats of men and women in business suits, fresh")
    assert shorter.text == "Boats full of men and women in business suits, fresh"


def test_a_final_that_does_not_keep_the_stable_words_is_a_revision() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("the birch canoe")
    stabilizer.update("the birch canoe slid")
    assert not stabilizer.revises("The birch canoe slid on the smooth planks.")
    assert stabilizer.revises("The birch can use lid on the smooth planks.")
    assert not LocalAgreement().revises("anything at all")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I am sitting in a room. I am sitting in a room.", (0, 6)),
        ("we're just saying some words we're just saying some words", (0, 5)),
        ("good good good good good good good good", (0, 4)),
        ("no no no, I said no", None),  # short runs are ordinary speech
        ("ask not what your country can do for you, ask what you can do", None),
    ],
)
def test_a_run_repeated_right_after_itself_is_found(text: str, found: tuple[int, int] | None) -> None:
    assert repeated_run(text.split()) == found


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("uh uh uh uh uh uh uh uh uh", "uh"),
        ("The grass, the grass, the grass,", "The grass,"),
        ("Kind of a... Kind of a... Kind", "Kind of a..."),  # the budget cut the third copy short
        ("I am sitting in a room. I am sitting in a room.", "I am sitting in a room."),
        ("no no, very very good", "no no, very very good"),  # twice is ordinary speech
        ("we had had it", "we had had it"),
    ],
)
def test_a_partial_that_loops_is_cut_to_the_first_copy(text: str, kept: str) -> None:
    assert without_loop(text) == kept


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


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [
        field.name
        for field in dataclasses.fields(Settings)
        if f"| `--{field.name.replace('_', '-')}` | `{env_name(field.name)}` |" not in readme
    ]
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_settings_flags_over_environment_over_defaults() -> None:
    settings = load_settings(
        ["--max-streams", "3"], {"HWS_MAX_STREAMS": "5", "HWS_BEAM_SIZE": "4", "HWS_REFLECTION": "false"}
    )
    assert settings.max_streams == 3 and settings.beam_size == 4 and settings.reflection is False
    assert load_settings([], {}).model == "tiny.en-embedded"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--device", "tpu"], {}, "device"),
        ([], {"HWS_MAX_UTTERANCE_S": "31"}, "HWS_MAX_UTTERANCE_S"),
        ([], {"HWS_PORT": "abc"}, "HWS_PORT='abc'"),
        (["--vad-frame-ms", "25"], {}, "10, 20 or 30"),
        (["--encoder-padding-s", "31"], {}, "encoder_padding_s .*30: Whisper's fixed window"),
        (["--max-stream-age-s", "-1"], {}, r"max_stream_age_s .*0-86400 \(0: off\)"),
        ([], {"HWS_MAX_STREAM_AGE_S": "nan"}, "HWS_MAX_STREAM_AGE_S"),
    ],
)
def test_settings_rejected_with_a_clear_message(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(argv, env)


def test_recent_audio_holds_the_last_seconds_by_stream_position() -> None:
    recent = RecentAudio(1.0, start=500)  # 16000 samples
    stream = np.arange(40_000, dtype=np.float32)
    for i in range(0, stream.shape[0], 7_001):
        recent.append(stream[i : i + 7_001])
    assert recent.end == 40_500
    assert np.array_equal(recent.get(30_000, 40_500), stream[29_500:40_000])
    assert recent.get(24_499, 30_000) is None  # fell out of the buffer
    assert recent.get(40_000, 40_501) is None  # not received yet
    recent.append(stream[:20_000])  # longer than the buffer
    assert np.array_equal(recent.get(60_500 - 16_000, 60_500), stream[4_000:20_000])


def test_the_compat_arrival_clock_forgets_what_no_result_can_ask_for() -> None:
    from hws.server.compat import SAMPLE_RATE, ArrivalClock

    clock = ArrivalClock()
    for second in range(100_000):
        clock.record(SAMPLE_RATE)  # one second of audio per message
        if second % 10 == 9:
            clock.forget_before(second - 5.0)  # a final up to 5 s ago
    assert len(clock._arrivals._ends) < 100
    assert clock.wall_time(99_998.5) > 0


@pytest.mark.parametrize(
    ("endpoint_at", "done_at", "seconds", "endpoint", "queue", "decode"),
    [
        (10.5, 11.5, 0.4, 0.5, 0.6, 0.4),  # queued after the endpoint: waited, then decoded
        (10.5, 10.7, 0.4, 0.5, 0.0, 0.2),  # begun in the pause: only the decode's last 0.2 s is after the endpoint
        (10.5, 10.4, 0.4, 0.5, 0.0, 0.0),  # done before the endpoint: all of it hidden in the endpoint wait
        (10.0, 10.9, 0.4, 0.0, 0.5, 0.4),  # a partial: no endpoint, from its audio end
    ],
)
def test_a_results_latency_splits_into_parts_that_follow_one_another(
    endpoint_at: float, done_at: float, seconds: float, endpoint: float, queue: float, decode: float
) -> None:
    from hws.asr.types import DecodeTiming
    from hws.stream.session import result_timing

    timing = result_timing(10.0, endpoint_at, DecodeTiming(0.0, seconds, 8.0, done_at), sent_at=12.0)
    parts = (timing.endpoint_wait_s, timing.queue_wait_s, timing.decode_s)
    assert parts == pytest.approx((endpoint, queue, decode))
    assert timing.latency_s == 2.0 and sum(parts) <= timing.latency_s
    assert timing.real_time_factor == pytest.approx(0.05) and timing.decoded_audio_s == 8.0


def test_arrival_times_are_looked_up_by_stream_position_and_forgotten_behind_the_final_position() -> None:
    from hws.stream.session import ARRIVAL_STEP, Arrivals

    arrivals = Arrivals()
    for n in range(1, 11):
        arrivals.add(n * 1600, float(n))  # 100 ms messages, one a second
    assert arrivals.at(1600) == 1.0 and arrivals.at(1601) == 2.0 and arrivals.at(16_000) == 10.0
    arrivals.forget(8000)  # the messages that end before sample 8000 go
    assert arrivals.at(1) == 5.0 and arrivals.at(8000) == 5.0
    for n in range(1, 1001):  # one sample a message: merged, at most one entry per ARRIVAL_STEP of audio
        arrivals.add(16_000 + n, 10.0 + n)
    assert len(arrivals._ends) <= 6 + 1000 // ARRIVAL_STEP + 1
    # A position reads the arrival of a message at most ARRIVAL_STEP samples after its own.
    for position in (16_001, 16_500, 17_000):
        assert position - 16_000 + 10.0 <= arrivals.at(position) <= position - 16_000 + 10.0 + ARRIVAL_STEP


def test_the_stream_that_used_the_least_decode_time_is_served_first() -> None:
    from hws.asr.scheduler import Engine, SchedulerSettings
    from hws.asr.types import DecodeOptions, JobKind, ModelInfo

    engine = Engine(Settings().pick(SchedulerSettings), FakeBackend())
    engine.info = ModelInfo("queues only", "", "cpu", "int8", False)  # not loaded, so no workers: _next_batch by hand
    audio, options = np.zeros(16_000, np.float32), DecodeOptions()

    def next_job() -> tuple[str, JobKind]:
        (job,) = engine._next_batch()
        engine._done([job])
        return job.stream_id, job.kind

    engine._charge("flood", 20.0)  # a stream that kept the workers busy lately
    for _ in range(2):
        engine.submit("flood", JobKind.FINAL, audio, options)
    engine.submit("captions", JobKind.PARTIAL, audio, options)
    engine.submit("other", JobKind.PARTIAL, audio, options)
    engine._charge("other", 1.0)
    # A light stream's partials go before the flooding stream's finals, least recently served first.
    assert next_job() == ("captions", JobKind.PARTIAL)
    assert next_job() == ("other", JobKind.PARTIAL)
    engine.submit("captions", JobKind.FINAL, audio, options)
    engine.submit("other", JobKind.FINAL, audio, options)
    # Finals: the least used stream first; the flooding stream's in their own order, last.
    assert [next_job() for _ in range(4)] == [
        ("captions", JobKind.FINAL),
        ("other", JobKind.FINAL),
        ("flood", JobKind.FINAL),
        ("flood", JobKind.FINAL),
    ]
    # Among streams of similar use, a final goes before a partial.
    engine.submit("other", JobKind.PARTIAL, audio, options)
    engine.submit("captions", JobKind.FINAL, audio, options)
    assert [next_job() for _ in range(2)] == [("captions", JobKind.FINAL), ("other", JobKind.PARTIAL)]


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("localhost", "localhost:50051"),
        ("localhost:50061", "localhost:50061"),
        ("::1", "[::1]:50051"),
        ("[::1]", "[::1]:50051"),
        ("[::1]:50061", "[::1]:50061"),
        ("dns:///speech.example.com:443", "dns:///speech.example.com:443"),
    ],
)
def test_a_client_address_without_a_port_means_the_default_grpc_port(given: str, dialled: str) -> None:
    from hws.client import with_default_port

    assert with_default_port(given) == dialled


def _equal_jitter_bounds(failures: int, backoff_s: float, cap_s: float, pushback_s: float) -> tuple[float, float]:
    ceiling = min(cap_s, backoff_s * 2 ** (failures - 1))
    floor = max(pushback_s, ceiling / 2)
    return floor, floor + ceiling / 2


@pytest.mark.parametrize("pushback_s", [0.0, 3.0])
def test_the_resume_backoff_doubles_to_its_cap_with_jitter_above_the_servers_pushback(pushback_s: float) -> None:
    import random

    from hws.client import resume_delay

    rng = random.Random(14)
    for failures in range(1, 12):
        low, high = _equal_jitter_bounds(failures, 0.5, 10.0, pushback_s)
        delays = [resume_delay(failures, 0.5, 10.0, pushback_s, rng) for _ in range(2000)]
        assert all(low <= delay <= high for delay in delays), (failures, low, high)
        # Spread over the whole interval: clients that failed together do not come back together.
        assert min(delays) < low + 0.05 * (high - low) and max(delays) > high - 0.05 * (high - low)
        assert len(set(delays)) == len(delays)
    assert high == max(pushback_s, 5.0) + 5.0  # the cap (10 s) holds from the sixth failure on
    assert resume_delay(10_000, 0.5, 10.0, pushback_s, rng) <= max(pushback_s, 5.0) + 5.0  # no overflow
    # After a connection that made progress: the pushback plus up to backoff_s (a drain's clients spread out).
    assert all(pushback_s <= resume_delay(0, 0.5, 10.0, pushback_s, rng) <= pushback_s + 0.5 for _ in range(200))
    # The same seed, the same schedule.
    first, second = random.Random(5), random.Random(5)
    assert [resume_delay(n, rng=first) for n in range(8)] == [resume_delay(n, rng=second) for n in range(8)]


def test_a_stream_that_cannot_connect_backs_off_on_the_schedule_until_its_attempts_run_out(tmp_path: Path) -> None:
    import random

    import grpc

    from hws import client
    from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb

    nowhere = f"unix:{tmp_path / 'no-server.sock'}"  # refused at once: UNAVAILABLE, and no progress
    source = client.AudioSource([b"\0\0" * 1600], 16_000)
    config = pb.StreamingConfig(recognition=pb.RecognitionConfig(sample_rate_hz=16_000))
    retries: list[tuple[int, float]] = []
    responses = client.stream_resumable(
        lambda connection: client.make_channel(nowhere),
        source,
        config,
        attempts=6,
        backoff_s=0.01,
        max_backoff_s=0.04,
        rng=random.Random(3),
        on_retry=lambda exc, connection, delay: retries.append((connection, delay)),
    )
    with pytest.raises(grpc.RpcError) as raised:
        list(responses)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    expected = random.Random(3)
    assert retries == [(n, client.resume_delay(n, 0.01, 0.04, 0.0, expected)) for n in range(1, 7)]
    assert [delay <= 0.04 for _, delay in retries] == [True] * 6


def test_a_backlogged_stream_leaves_a_worker_for_each_stream_that_keeps_up() -> None:
    from hws.asr.scheduler import Engine, SchedulerSettings
    from hws.asr.types import DecodeOptions, JobKind, ModelInfo

    engine = Engine(Settings().pick(SchedulerSettings), FakeBackend())
    engine.info = ModelInfo("queues only", "", "cpu", "int8", False)  # not loaded, so no workers: the queues by hand
    engine.workers = 2
    audio, options = np.zeros(16_000, np.float32), DecodeOptions()

    def take() -> Any:
        with engine._lock:
            return engine._pick(time.monotonic())

    def label(job: Any) -> tuple[str, JobKind] | None:
        return None if job is None else (job.stream_id, job.kind)

    engine.submit("captions", JobKind.PARTIAL, audio, options)
    engine._done([take()])  # a captioning stream, open and keeping up
    for _ in range(5):  # babble at 50x real time: utterance after utterance, each a final
        engine.submit("flood", JobKind.FINAL, audio, options)
    # Two workers, one stream keeping up: the backlog gets one of them, and waits for it.
    flood = take()
    assert label(flood) == ("flood", JobKind.FINAL)
    assert take() is None
    # The stream that keeps up finds the other worker free.
    engine.submit("captions", JobKind.FINAL, audio, options)
    captions = take()
    assert label(captions) == ("captions", JobKind.FINAL)
    engine._done([captions])
    # When it has gone, a lone backlog gets every worker.
    engine.close_stream("captions")
    second = take()
    assert label(second) == ("flood", JobKind.FINAL)
    assert take() is None  # both workers hold its finals
    engine._done([flood])
    assert label(take()) == ("flood", JobKind.FINAL)
