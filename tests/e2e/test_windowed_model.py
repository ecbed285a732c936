"""The encoder window: sized to the utterance, the same rule for every window, Whisper's 30 s on request."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from faster_whisper.audio import pad_or_trim

from hws.asr.whisper.windowed import WINDOW_FRAMES, WindowedWhisperModel, content_frames, encoder_frames
from tests.support import clip_audio, offline_model


@pytest.fixture(scope="module")
def model() -> WindowedWhisperModel:
    windowed = offline_model(windowed=True)
    assert isinstance(windowed, WindowedWhisperModel)
    return windowed


def test_window_is_content_plus_margin_in_whole_seconds_within_30_s() -> None:
    assert encoder_frames(550, 3.0) == 900
    assert encoder_frames(600, 3.0) == 900
    assert encoder_frames(601, 3.0) == 1000
    assert encoder_frames(2900, 3.0) == WINDOW_FRAMES
    assert encoder_frames(550, 30.0) == WINDOW_FRAMES


def test_padding_is_told_from_content_even_for_digital_silence(model: WindowedWhisperModel) -> None:
    speech = model.feature_extractor(clip_audio("jfk.flac"))
    silence = model.feature_extractor(np.zeros(16_000, dtype=np.float32))
    for features in (speech, silence):
        assert content_frames(pad_or_trim(features)) == features.shape[-1]


@pytest.mark.parametrize("padding_s", [3.0, 30.0])
def test_every_window_is_encoded_by_the_same_rule(model: WindowedWhisperModel, padding_s: float) -> None:
    # generate_segments hands a later window to encode() zero-padded to 30 s; it must come out
    # the size, and the values, of encoding the same content through the engine's first-window path.
    model.window.padding_s = padding_s
    features = model.feature_extractor(clip_audio("jfk.flac"))[:, :-1]
    frames = encoder_frames(features.shape[-1], padding_s)
    from_later_window = np.asarray(model.encode(pad_or_trim(features)))
    from_first_window = np.asarray(model.encode_window(features, frames))
    assert from_later_window.shape == (1, frames // 2, 384)
    np.testing.assert_array_equal(from_later_window, from_first_window)


@pytest.mark.parametrize(
    ("threshold", "falls_back"),
    [({"log_prob_threshold": 0.0}, False), ({"compression_ratio_threshold": 0.1}, True)],
    ids=["low-log-probability", "loop"],
)
def test_only_a_loop_makes_a_decode_fall_back_to_sampling(
    model: WindowedWhisperModel, threshold: dict[str, float], falls_back: bool
) -> None:
    # Each threshold is set so that every decode misses it: a missed log probability keeps the greedy
    # decode, a missed compression ratio (a loop) still tries the sampling temperatures.
    from faster_whisper.tokenizer import Tokenizer

    from hws.asr.whisper.backend import _base_options

    model.window.padding_s = 30.0
    features = model.feature_extractor(clip_audio("jfk.flac"))[:, :-1]
    options = dataclasses.replace(_base_options(model), temperatures=[0.0, 0.5], best_of=1, **threshold)
    tokenizer = Tokenizer(model.hf_tokenizer, False, task="transcribe", language="en")
    prompt = model.get_prompt(tokenizer, [], without_timestamps=False)
    _, _, temperature, _ = model.generate_with_fallback(model.encode(features), prompt, tokenizer, options)
    assert (temperature > 0) is falls_back
