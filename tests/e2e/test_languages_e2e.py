"""base-embedded, multilingual Whisper base: the language of every utterance, through the real server and model.

The speech is synthesized with espeak-ng (Debian's 1.51, installed by scripts/infra_tools.sh) in six
voices: en, de, es, it, fr and pl. Whisper base detects these sentences with probability 0.67-0.98
(measured); other sentences and voices of espeak-ng it mistakes for Latin, Thai or Japanese, which
says more about the synthesizer than about the model. The server joins the model into a temporary
cache that holds a damaged join first: it must be redone, never loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from faster_whisper.tokenizer import _LANGUAGE_CODES
from prometheus_client.parser import text_string_to_metric_families

from hws.asr.whisper.embedded import BASE, ensure_joined
from hws.gen.hws.transcriber.v1 import transcriber_pb2 as pb
from tests.support import RATE, ServerProcess, chunked, finals, requests, stream, streaming_config, to_pcm16

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (scripts/infra_tools.sh installs it)"
)

# espeak-ng voice: the sentence it says. The voices' names are Whisper's language codes.
SENTENCES = {
    "en": "Good morning everyone. Today we are going to talk about the new project and the plans for next year.",
    "de": "Guten Morgen zusammen. Heute sprechen wir über das neue Projekt und über die Pläne für das nächste Jahr.",
    "es": "Buenos días a todos. Hoy vamos a hablar del nuevo proyecto y de los planes para el próximo año.",
    "it": "Buongiorno a tutti. Oggi parliamo del nuovo progetto e dei piani per il prossimo anno.",
    "fr": "Demain après-midi, il va pleuvoir. Je vais prendre mon parapluie pour aller au travail, "
    "et je rentrerai en train.",
    "pl": "Dzień dobry wszystkim. Dzisiaj porozmawiamy o nowym projekcie i o planach na przyszły rok.",
}
WORDS_PER_MINUTE = 140
PAUSE_S = 1.5  # between the sentences of one stream: an endpoint (500 ms) and more
CHUNK = 3200  # 100 ms of 16 kHz LINEAR16
BASE_LANGUAGES = set(_LANGUAGE_CODES) - {"yue"}  # Whisper's languages before large-v3 added Cantonese


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Each sentence spoken by its voice, as 16 kHz float32 samples."""
    from faster_whisper.audio import decode_audio

    folder = tmp_path_factory.mktemp("espeak")
    audio = {}
    for voice, sentence in SENTENCES.items():
        path = folder / f"{voice}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(path), sentence], check=True, timeout=60
        )
        audio[voice] = decode_audio(str(path), sampling_rate=RATE)
    return audio


@pytest.fixture(scope="module")
def base_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    cache = tmp_path_factory.mktemp("model-cache")
    model_bin = ensure_joined(BASE, cache) / "model.bin"
    with open(model_bin, "r+b") as handle:  # a byte changed in the weights: the digest no longer matches
        handle.seek(50_000_000)
        byte = handle.read(1)
        handle.seek(50_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    args = ["--model", "base-embedded", "--model-cache-dir", str(cache), "--max-stream-age-s", "0"]
    process = ServerProcess(args=args).start(tmp_path_factory.mktemp("server"))
    yield process
    process.stop()


def pcm(*voices: str, speech: dict[str, np.ndarray]) -> tuple[bytes, list[tuple[str, float, float]]]:
    """The voices' sentences one after the other with pauses, and each one's (voice, start, end) in seconds."""
    pause = np.zeros(round(PAUSE_S * RATE), dtype=np.float32)
    parts, spans, position = [], [], 0
    for voice in voices:
        spans.append((voice, position / RATE, (position + speech[voice].shape[0]) / RATE))
        parts += [speech[voice], pause]
        position += speech[voice].shape[0] + pause.shape[0]
    return to_pcm16(np.concatenate(parts)), spans


def spoken_in(result: pb.SpeechResult, spans: list[tuple[str, float, float]]) -> str:
    """The voice whose sentence the result's utterance overlaps most."""
    return max(spans, key=lambda span: min(span[2], result.end_s) - max(span[1], result.start_s))[0]


def test_the_server_redid_the_damaged_join(base_server: ServerProcess) -> None:
    events = [json.loads(line) for line in base_server.log().splitlines()]
    names = [event["event"] for event in events]
    assert names.index("model_rejoining") < names.index("model_joined") < names.index("model_loaded")
    rejoining = next(event for event in events if event["event"] == "model_rejoining")
    assert "model.bin has sha256" in rejoining["reason"]


@pytest.mark.parametrize("voice", list(SENTENCES))
def test_each_language_is_detected(base_server: ServerProcess, speech: dict[str, np.ndarray], voice: str) -> None:
    audio, _ = pcm(voice, speech=speech)
    results = finals(stream(base_server.address, requests(streaming_config(), chunked(audio, CHUNK))))
    assert results and all(r.text for r in results)
    for result in results:
        assert result.language == voice, (result.language, result.language_probability, result.text)
        assert 0.5 < result.language_probability < 1.0, "a detection, and a confident one"


def test_language_in_the_config_is_used_as_it_is(base_server: ServerProcess, speech: dict[str, np.ndarray]) -> None:
    def run(voice: str, language: str = "") -> list[pb.SpeechResult]:
        audio, _ = pcm(voice, speech=speech)
        config = streaming_config(language=language)
        return finals(stream(base_server.address, requests(config, chunked(audio, CHUNK))))

    detected, forced = run("de"), run("de", language=" DE ")
    assert [r.language for r in detected] == ["de"] * len(detected)
    assert [(r.language, r.language_probability) for r in forced] == [("de", 1.0)] * len(forced)
    # Asking for the language the detection finds changes nothing else: the same decode.
    assert [r.text for r in forced] == [r.text for r in detected]
    # Asked for another language, the model writes in it (or translates) whatever it hears.
    overridden = run("es", language="en")
    assert overridden and [(r.language, r.language_probability) for r in overridden] == [("en", 1.0)] * len(overridden)


def test_each_utterance_of_a_stream_gets_its_own_language(
    base_server: ServerProcess, speech: dict[str, np.ndarray]
) -> None:
    voices = ("en", "de", "es", "it", "en")
    audio, spans = pcm(*voices, speech=speech)
    config = streaming_config(interim_results=True)
    before = scrape(base_server)
    # Twice real time: partials come (an unpaced stream would coalesce most of them away).
    responses = stream(base_server.address, requests(config, chunked(audio, CHUNK), pace_s=0.05), timeout=300)
    results = finals(responses)
    heard = [(spoken_in(r, spans), r.language, round(r.language_probability, 3), r.text) for r in results]
    sentences = [voice for voice, *_ in heard]  # one final per sentence, unless the VAD cut one in two
    assert [v for i, v in enumerate(sentences) if i == 0 or v != sentences[i - 1]] == list(voices), heard
    # Each final detects on its own utterance's audio: the previous utterance it hears as context (from the
    # second on) does not decide its language.
    assert all(voice == language for voice, language, *_ in heard), heard

    partials = [r.result for r in responses if r.WhichOneof("response") == "result" and not r.result.is_final]
    assert partials, "partials were asked for"
    for partial in partials:  # each detects on its own audio: early ones, on a second of speech, are often wrong
        assert partial.language in BASE_LANGUAGES and 0 < partial.language_probability <= 1, partial
    # Every decode detected its language, none was given one: partials and finals alike.
    after = scrape(base_server)

    def delta(name: str, kind: str) -> float:
        return value(after, name, kind) - value(before, name, kind)

    for kind, delivered in (("final", results), ("partial", partials)):
        detections = delta("hws_language_detection_seconds_count", kind)
        assert detections == delta("hws_decode_seconds_count", kind) >= len(delivered), (kind, detections)


def scrape(server: ServerProcess) -> dict[tuple[str, str], float]:
    """Samples of /metrics by (name, kind label)."""
    text = urllib.request.urlopen(server.metrics_url, timeout=5).read().decode()
    return {
        (sample.name, sample.labels.get("kind", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, str], float], name: str, kind: str) -> float:
    return samples.get((name, kind), 0.0)


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("yue", "cannot transcribe 'yue'"),  # Cantonese came with large-v3; base has 99 languages, not it
        ("xx", "unknown language code"),
    ],
)
def test_a_language_the_model_cannot_produce_is_invalid_argument(
    base_server: ServerProcess, language: str, words: str
) -> None:
    config = streaming_config(language=language)
    with pytest.raises(grpc.RpcError) as info:
        stream(base_server.address, requests(config, [b"\x00" * CHUNK]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in info.value.details()
