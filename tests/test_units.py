"""Unit tests of the pure parts: audio decoding, VAD segmentation, LocalAgreement, the re-read guard, settings."""

from __future__ import annotations

import audioop  # deprecated, present through 3.12: an independent G.711 reference
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from app.audio import AudioDecoder, AudioFormatError, Encoding, decode_whole
from app.config import ConfigError, Settings, env_name, load_settings
from app.stabilizer import LocalAgreement, repeats_prefix
from app.vad import EndReason, Segmenter, SpeechDiscarded, SpeechEnd, SpeechStart, VadParams
from tests.helpers import EVAL_DIR, clip_pcm16


def test_mulaw_matches_g711_reference() -> None:
    codes = bytes(range(256))
    expected = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2") / 32768.0
    decoded = decode_whole(codes, Encoding.MULAW, 16000)
    assert np.allclose(decoded, expected, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_duration_across_chunk_boundaries(rate: int) -> None:
    pcm = clip_pcm16("jfk.flac", rate=rate)
    decoder = AudioDecoder(Encoding.LINEAR16, rate)
    pieces = [decoder.decode(pcm[i : i + 2 * 317]) for i in range(0, len(pcm), 2 * 317)] + [decoder.flush()]
    out = np.concatenate(pieces)
    assert abs(out.shape[0] - len(pcm) / 2 * 16000 / rate) <= 2
    direct = decode_audio(str(EVAL_DIR / "jfk.flac"))
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
    audio = decode_audio(str(EVAL_DIR / "synth_dialogue_clean.wav"))
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
    audio = np.concatenate([np.zeros(16000, dtype=np.float32), decode_audio(str(EVAL_DIR / "ls_1221-135766-0001.wav"))])
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
    speech = decode_audio(str(EVAL_DIR / "ls_2830-3980-0043.wav"))
    assert [e for e in segment(speech, VadParams()) if isinstance(e, SpeechEnd)]


def test_local_agreement_commits_only_agreed_prefix_and_never_retracts() -> None:
    stabilizer = LocalAgreement()
    assert stabilizer.update("the cat").stable_text == ""
    first = stabilizer.update("The cat sat on")
    assert first.stable_text == "The cat" and first.stability == 0.5
    second = stabilizer.update("the bat sat on a mat")  # contradicts the committed words
    assert second.text.startswith("The cat") and second.stable_text.startswith("The cat")
    assert stabilizer.committed_text.startswith("The cat")


def test_short_audio_hypotheses_do_not_commit() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("that's how this", committable=False)
    assert stabilizer.update("that's how this cop", committable=True).stable_text == ""
    assert stabilizer.update("That's how this cop collected").stable_text == "That's how this cop"


@pytest.mark.parametrize(
    ("text", "reread"),
    [
        ("ask what you can do for your country. Ask what you can do for your country.", True),
        ("ask what you can do for your country. can do for your country, ask what you", True),  # across the end
        ("ask what you can do for your country.", False),  # nothing after the prefix
        ("ask what you can do for your country. And then some.", False),  # new words
        ("ask what you can do for your country, country.", False),  # too short a run to call
        ("Ask not what you can do for your country. Ask what you can do for your country.", False),  # not the prefix
    ],
)
def test_a_second_reading_after_the_forced_prefix_is_recognised(text: str, reread: bool) -> None:
    assert repeats_prefix("ask what you can do for your country.", text) is reread


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
    ],
)
def test_settings_rejected_with_a_clear_message(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(argv, env)
