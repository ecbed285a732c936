"""Whisper's control tokens spelt in hot words are text, through the real server and model, on recorded English.

Before they were tokenized as control tokens: with the language "de" or "fr", the hot word `<|translate|>`
turned base's transcription into an English translation (labelled de; measured: a word error rate of 0.0
against the English reference, where the plain-text hot word "translate" gives German, 0.94), and on tiny.en
the hot words CONTROL gave no final at all. Read as text, the decode stays in the language asked for, and
English speech stays English.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import ServerProcess, finals, manifest, stream_clip, streaming_config, wer

CLIP = "ls_61-70968-0000.flac"  # 4.9 s of LibriSpeech, one utterance
CONTROL = ["<|fr|>", "<|translate|>", "<|endoftext|>", "<|notimestamps|>"]


@pytest.fixture(scope="module")
def base_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = ["--model", "base-embedded", "--model-cache-dir", str(tmp_path_factory.mktemp("model-cache"))]
    with ServerProcess(args=args).start(tmp_path_factory.mktemp("server")) as process:
        yield process


def transcribe(server: ServerProcess, language: str, hotwords: list[str]) -> list[pb.SpeechResult]:
    results = finals(stream_clip(server.address, CLIP, streaming_config(language=language, hotwords=hotwords)))
    assert results and all(r.text for r in results), (language, hotwords, [r.text for r in results])
    return results


def text(results: list[pb.SpeechResult]) -> str:
    return " ".join(r.text for r in results)


@pytest.mark.parametrize("language", ["de", "fr"])
def test_translate_as_a_hot_word_does_not_translate(base_server: ServerProcess, language: str) -> None:
    reference = manifest()[CLIP]
    results = transcribe(base_server, language, ["<|translate|>"])
    assert [r.language for r in results] == [language] * len(results)
    assert wer(reference, text(results)) > 0.5, f"transcribed in {language}, not translated: {text(results)}"


@pytest.mark.parametrize("model", ["tiny.en-embedded", "base-embedded"])
def test_control_tokens_as_hot_words_leave_english_english(request: pytest.FixtureRequest, model: str) -> None:
    server: ServerProcess = request.getfixturevalue("server" if model == "tiny.en-embedded" else "base_server")
    results = transcribe(server, "", CONTROL)
    assert [r.language for r in results] == ["en"] * len(results)
    assert wer(manifest()[CLIP], text(results)) <= 0.1, text(results)
