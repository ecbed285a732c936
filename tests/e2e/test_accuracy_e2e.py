"""Finals on real continuous speech with partials on: as accurate as offline Whisper, nothing invented.

Real recordings from ../shared/eval/real (read, spontaneous, telephone-band, noisy) are joined with
1.5 s pauses into one stream and streamed with partials and word timings on, as a captioning client
does; offline faster-whisper transcribes the same joined audio with the same model and final-decode
settings (beam 1, no conditioning on previous text). Against faster-whisper's defaults, which
condition each 30 s window on the previous one's text, the ratio is higher: README, Benchmarks.
Streaming runs faster than real time here: a final depends only on its audio, not on the timing of
the stream, so the pace changes the partials and the latency (measured by scripts/bench.py),
not the finals.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import (
    PAUSE_MARGIN_S,
    RATE,
    JoinedSpeech,
    ServerProcess,
    chunked,
    errors,
    finals,
    join_recordings,
    offline_transcript,
    real_audio,
    real_manifest,
    repeated_runs,
    requests,
    stream,
    streaming_config,
    to_pcm16,
)

WER_RATIO_BOUND = 1.10


@pytest.fixture(scope="module")
def joined() -> JoinedSpeech:
    return join_recordings(row["file"] for row in real_manifest())


def stream_audio(address: str, audio: np.ndarray, **recognition: object) -> list:
    config = streaming_config(**recognition)
    return stream(address, requests(config, chunked(to_pcm16(audio), 3200)), timeout=900)


@pytest.fixture(scope="module")
def captioned(server: ServerProcess, joined: JoinedSpeech) -> list:
    return finals(stream_audio(server.address, joined.audio, interim_results=True, word_timestamps=True))


def test_continuous_real_speech_with_partials_is_as_accurate_as_offline(captioned: list, joined: JoinedSpeech) -> None:
    streamed = errors(joined.reference, " ".join(r.text for r in captioned))
    offline = errors(joined.reference, offline_transcript(joined.audio))
    assert streamed.wer <= WER_RATIO_BOUND * offline.wer, (streamed, offline)
    assert streamed.insertions <= offline.insertions + 0.01 * offline.words, (streamed, offline)


def test_no_final_repeats_a_run_of_words(captioned: list, joined: JoinedSpeech) -> None:
    assert repeated_runs((r.text for r in captioned), joined.reference) == []


def test_no_words_in_the_pauses_between_recordings(captioned: list, joined: JoinedSpeech) -> None:
    invented = [
        (w.word, round(w.start_s, 2))
        for r in captioned
        for w in r.words
        if not joined.spoken((w.start_s + w.end_s) / 2)
    ]
    assert invented == []


def test_partials_never_change_a_final(server: ServerProcess) -> None:
    # Spontaneous speech, where partial hypotheses disagree most, and telephone-band.
    names = [row["file"] for row in real_manifest() if row["kind"] == "spontaneous"][:8]
    names += [row["file"] for row in real_manifest() if row["kind"] == "telephone"][:4]
    audio = join_recordings(names).audio
    on = finals(stream_audio(server.address, audio, interim_results=True, word_timestamps=True))
    off = finals(stream_audio(server.address, audio, word_timestamps=True))
    assert [r.utterance_id for r in on] == [r.utterance_id for r in off]
    # A final that fell back to sampling (TEMPERATURE_FALLBACK) draws from a generator whose state depends
    # on which worker decoded it and what that worker sampled before; whether it falls back does not.
    assert [r.quality.temperature > 0 for r in on] == [r.quality.temperature > 0 for r in off]
    greedy = [(a.text, b.text) for a, b in zip(on, off, strict=True) if a.quality.temperature == 0]
    assert len(greedy) >= 0.8 * len(on)
    assert [a for a, _ in greedy] == [b for _, b in greedy]


def _tone(seconds: float, hz: float = 440.0, amplitude: float = 0.1) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _hum(seconds: float) -> np.ndarray:
    """Mains hum: 50 Hz and its odd harmonics, as a badly earthed microphone picks it up."""
    return sum((_tone(seconds, 50.0 * k, 0.2 / k) for k in (1, 3, 5, 7)), np.zeros(round(seconds * RATE), np.float32))


def _room_noise(seconds: float) -> np.ndarray:
    """Low, band-limited noise: white noise smoothed to below about 1 kHz, at about -50 dBFS."""
    white = np.random.default_rng(7).standard_normal(round(seconds * RATE))
    smoothed = np.convolve(white, np.ones(16) / 16, mode="same")
    return (0.003 * smoothed / smoothed.std()).astype(np.float32)


@pytest.mark.parametrize("tail", ["silence", "room_noise", "tone"])
def test_no_words_after_the_speech(server: ServerProcess, tail: str) -> None:
    names = ["lj_LJ001-0004.wav", "mfa_spont_multilingual_ipa_2.flac", "wsj8k_n800_440c0203.wav"]
    for name, seconds in zip(names, (2.0, 6.0, 10.0), strict=True):
        speech = real_audio(name)
        after = {"silence": np.zeros(round(seconds * RATE), np.float32), "room_noise": _room_noise(seconds)}
        audio = np.concatenate([speech, after.get(tail, _tone(seconds) if tail == "tone" else None)])
        results = finals(stream_audio(server.address, audio, interim_results=True, word_timestamps=True))
        assert results, name
        end = speech.shape[0] / RATE
        late = [(w.word, round(w.start_s, 2)) for r in results for w in r.words if w.start_s > end + PAUSE_MARGIN_S]
        assert late == [], (name, tail, [r.text for r in results])


@pytest.mark.parametrize("noise", ["room_noise", "tone", "tone_1khz", "hum"])
def test_a_stream_without_speech_gives_no_final(server: ServerProcess, noise: str) -> None:
    audio = {
        "room_noise": lambda: _room_noise(12.0),
        "tone": lambda: _tone(12.0),
        "tone_1khz": lambda: _tone(12.0, 1000.0, 0.3),  # Whisper heard this as "." and "..."
        "hum": lambda: _hum(12.0),
    }[noise]()
    responses = stream_audio(server.address, audio, interim_results=True, word_timestamps=True)
    assert [r.text for r in finals(responses) if r.text] == []
    assert [r.result.text for r in responses if r.HasField("result") and r.result.text] == []  # nor a partial
