"""Everything that touches faster-whisper or CTranslate2, behind the recognition interface (hws.asr.types).

Model resolution and loading (the embedded models included), device, compute type and worker
selection, the warm-up, the encoder window sized to the audio (app/hws/asr/whisper/windowed.py), the decode
options built once and replaced per job, each decode's language, the conditioning prompt (hot words
included), and the result built from Whisper's segments:
- the encoder sees the audio plus a margin of silence, in whole seconds, not Whisper's fixed 30 s
  window; finals get a wide margin (`encoder_padding_s`), partials a cheap one;
- every decode reads its audio alone, nothing forced: the result of a final depends on its audio
  and the stream's settings only (app/hws/stream/stabilizer.py says why); words that no speech supports are
  dropped (app/hws/asr/quality.py);
- each job's decoder runs through faster-whisper's own segment generation with its slice of the
  encoder output, so batched and unbatched decodes take the same path and give the same results.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
import structlog
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.transcribe import Segment, TranscriptionOptions, get_ctranslate2_storage, get_suppressed_tokens
from faster_whisper.utils import available_models
from huggingface_hub.errors import LocalEntryNotFoundError

from hws import metrics
from hws.asr import quality
from hws.asr.types import DecodeRequest, DecodeResult, JobKind, ModelInfo, Quality, Word
from hws.asr.whisper import embedded as embedded_models
from hws.asr.whisper.windowed import WindowedWhisperModel, encoder_frames
from hws.audio import TARGET_RATE
from hws.text import word_key

log = structlog.get_logger("hws.asr.whisper")

# Runaway guard: speech yields about 3-5 tokens a second (timestamps included); a hypothesis looping on
# repeated text (noise, junk hot words, a misleading forced prefix) would otherwise run every fallback
# temperature to Whisper's 448-token limit, many seconds of decoding that hold up every stream.
TOKENS_PER_SECOND = 10
MIN_NEW_TOKENS = 10
# A partial has no timestamp tokens and is only shown: fast speech is about 5 tokens a second. On the
# first second of an utterance, the finals' budget let tiny.en loop ("uh uh uh uh ...") to its end.
PARTIAL_TOKENS_PER_SECOND = 7
PARTIAL_MIN_NEW_TOKENS = 4
WHISPER_MAX_LENGTH = 448
PROMPT_CACHE_SIZE = 256  # streams' prompts kept encoded
PROMPT_OVERHEAD_TOKENS = 8  # <|startofprev|>, the start-of-transcript sequence, a margin
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CONTEXT_PAD_S = 0.3  # the VAD's pad before and after speech, left out when judging coverage
# Silence after the utterance in the window that detects a final's language when the final is heard with
# context (see WhisperBackend._language): on synthesized speech in 19 languages a 3 s margin detected as well as
# 15 s and Whisper's 30 s, at under half the cost of 15 s.
LANGUAGE_PADDING_S = 3.0
# Slack for Whisper's timings when a decode heard with context is split (see _result): they often
# stretch the previous utterance's last word into the silence after it.
CONTEXT_SPLIT_S = 0.25
REREAD_WORDS = 2  # a final heard with context whose words begin as the context's did read it again
NOT_A_WORD = frozenset(" .,!?;:…。，、！？：-–—\"'“”()[]{}¿")  # a "word" of only these is punctuation


@dataclasses.dataclass(frozen=True)
class WhisperSettings:
    """What the backend reads of the server's settings: fields of the same names (Settings.pick)."""

    model: str
    model_cache_dir: str
    device: str
    compute_type: str
    decode_workers: int
    cpu_threads: int
    max_batch_size: int
    encoder_padding_s: float  # the warm-up encodes a final's window
    beam_size: int


class ModelSettingError(ValueError):
    """A model setting every load would fail on: `setting` names it, `rule` says what is wrong."""

    def __init__(self, setting: str, rule: str) -> None:
        super().__init__(f"{setting}: {rule}")
        self.setting = setting
        self.rule = rule


class ModelUnavailable(RuntimeError):
    """A named model that is not in the cache and cannot be downloaded now (no network, the hub out of reach)."""


class DeviceUnusable(RuntimeError):
    """The device asked for cannot compute (a GPU without the CUDA libraries CTranslate2 needs): no retry heals it."""


def resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_batch_size(requested: int, device: str) -> int:
    # On a CPU one encoder pass already saturates the cores, so batching gains nothing there
    # (scripts/bench_encoder_window.py; the figures are in docs/benchmarks.md).
    if requested:
        return requested
    return 8 if device == "cuda" else 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_workers(requested: int, device: str) -> int:
    """Decodes that run at once. On a CPU, one per core, each on a single-threaded replica.

    A decoder step's operations are too small to share out between threads, so single-threaded
    replicas decoding a job each get more done than one replica on every core (docs/benchmarks.md,
    gives the figures). A GPU gains from batching instead, with one worker.
    """
    if requested:
        return requested
    return 1 if device == "cuda" else _cores()


def resolve_threads(requested: int, workers: int) -> int:
    return requested or max(1, _cores() // workers)


def resolve_compute_type(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    return "float16" if device == "cuda" else "int8"


def resolve_model_path(model: str, cache_dir: str) -> tuple[str, str]:
    """(display name, what WhisperModel loads): an embedded model, a folder, or a hub name.

    base-embedded is joined into `cache_dir` on its first use and verified on every load.
    """
    if model in embedded_models.NAMES:
        return model, str(embedded_models.model_folder(model, cache_dir))
    if Path(model).is_dir():
        return Path(model).name, model
    return model, model  # a faster-whisper name; WhisperModel downloads it into cache_dir


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")  # org/name on the Hugging Face hub


def check_model_settings(settings: WhisperSettings) -> None:
    """Say at start, with ModelSettingError naming the setting, what every load would fail on.

    A model folder that does not exist or holds no model, a name faster-whisper does not know, CUDA
    without a CUDA device, a compute type the device cannot run. A hub name is left to the load
    (which, with --model-load-wait, retries: a download can heal).
    """
    model = settings.model
    if model in embedded_models.NAMES and (problem := embedded_models.missing_packages(model)) is not None:
        raise ModelSettingError("model", problem)
    named = model in embedded_models.NAMES or model in available_models() or HUB_ID.fullmatch(model) is not None
    if Path(model).is_dir() and not (Path(model) / "model.bin").is_file():
        raise ModelSettingError("model", f"{model} holds no model.bin: not a CTranslate2 model folder")
    if not Path(model).is_dir() and not named:
        raise ModelSettingError(
            "model",
            f"no such folder {model}, and not a model name ({', '.join(embedded_models.NAMES)}, which need no "
            f"network; or, downloaded, {', '.join(available_models())}, or org/name on the Hugging Face hub)",
        )
    if settings.device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise ModelSettingError("device", "cuda, but CTranslate2 sees no CUDA device here (use auto or cpu)")
    if settings.compute_type not in ("auto", "default"):
        device = resolve_device(settings.device)
        supported = sorted(ctranslate2.get_supported_compute_types(device))
        if settings.compute_type not in supported:
            raise ModelSettingError(
                "compute_type",
                f"{settings.compute_type} does not run on {device} here; use auto or {', '.join(supported)}",
            )


def model_languages(model: WhisperModel) -> tuple[str, ...]:
    """The language codes a model can produce: its language tokens, in token order (an English-only model: en)."""
    if not model.model.is_multilingual:
        return ("en",)
    tokenizer = model.hf_tokenizer
    first = tokenizer.token_to_id("<|startoftranscript|>") + 1
    return tuple(tokenizer.id_to_token(first + i)[2:-2] for i in range(model.model.num_languages))


class WhisperBackend:
    """The Backend (hws.asr.types) on faster-whisper: one model, shared by the scheduler's workers."""

    # Every code Whisper has; a model knows these or fewer (ModelInfo.languages).
    language_codes = frozenset(_LANGUAGE_CODES)

    def __init__(self, settings: WhisperSettings) -> None:
        self.settings = settings
        self.workers = 1
        self.max_batch_size = 1
        self._model: Any = None
        self._suppressed_tokens: dict[str, list[int]] = {}
        # Each stream's prompt is encoded once, not per decode; thread-safe, for the decode workers.
        self._encoded_prompt = functools.lru_cache(maxsize=PROMPT_CACHE_SIZE)(self._encode_prompt)
        self._base_options: TranscriptionOptions | None = None

    # -- life cycle -------------------------------------------------------
    def load(self) -> ModelInfo:
        """Load the model (blocking) and warm it up; settles the device, workers and max_batch_size."""
        device = resolve_device(self.settings.device)
        compute_type = resolve_compute_type(self.settings.compute_type, device)
        name, path = resolve_model_path(self.settings.model, self.settings.model_cache_dir)
        self.workers = resolve_workers(self.settings.decode_workers, device)
        threads = resolve_threads(self.settings.cpu_threads, self.workers)
        log.info(
            "model_loading",
            model=name,
            path=path,
            device=device,
            compute_type=compute_type,
            workers=self.workers,
            cpu_threads=threads,
        )
        # Temperature fallback samples. CTranslate2 seeds each of its threads' generators once, from this
        # seed, at their first sample: a fresh server given the same jobs in the same order samples the
        # same text, but two decodes of the same audio need not (the generator has moved on).
        ctranslate2.set_random_seed(0)
        self._model = self._open(path, device, compute_type, threads)
        try:
            self._warm_up()
        except RuntimeError as exc:
            # A GPU is visible but CUDA cannot run: CTranslate2 finds its CUDA 12 libraries (cuBLAS)
            # only at the first computation. Chosen automatically, the device falls back to the CPU;
            # asked for, it fails the load, saying why.
            if self.settings.device != "auto" or device != "cuda":
                raise DeviceUnusable(f"{device} cannot run the model here: {exc}") from exc
            log.warning("cuda_unusable", error=str(exc), fallback="cpu")
            device = "cpu"
            compute_type = resolve_compute_type(self.settings.compute_type, device)
            self.workers = resolve_workers(self.settings.decode_workers, device)
            threads = resolve_threads(self.settings.cpu_threads, self.workers)
            self._model = self._open(path, device, compute_type, threads)
        self._base_options = _base_options(self._model)
        multilingual = bool(self._model.model.is_multilingual)
        self.max_batch_size = resolve_batch_size(self.settings.max_batch_size, device)
        return ModelInfo(name, path, device, compute_type, multilingual, model_languages(self._model))

    def _open(self, path: str, device: str, compute_type: str, threads: int) -> WindowedWhisperModel:
        try:
            return WindowedWhisperModel(
                path,
                device=device,
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=self.workers,
                download_root=self.settings.model_cache_dir,
            )
        except LocalEntryNotFoundError as exc:  # the hub's own message is three lines on its cache layout
            raise ModelUnavailable(
                f"{path} is not in {self.settings.model_cache_dir}, and the Hugging Face hub cannot be reached"
            ) from exc

    def _warm_up(self) -> None:
        """Encode a second of silence: a device that cannot compute fails here, not on a client's audio."""
        model = self._model
        model.window.padding_s = self.settings.encoder_padding_s  # a final's window, as a client's would be
        model.encode(model.feature_extractor(np.zeros(TARGET_RATE, dtype=np.float32)))

    # -- a stream's settings ----------------------------------------------
    def prompt(self, initial_prompt: str, hotwords: Sequence[str]) -> str | None:
        """The text that conditions a stream's every decode: its prompt, then its hot words."""
        # Hot words go into the prompt, the one conditioning every decode shares.
        prompt = " ".join(
            part for part in (initial_prompt.strip(), ", ".join(w.strip() for w in hotwords if w.strip())) if part
        )
        return prompt or None

    # -- decoding ---------------------------------------------------------
    def features(self, audio: np.ndarray) -> np.ndarray:
        """The log-mel features that the encoder and faster-whisper's segment generation read."""
        return self._model.feature_extractor(audio)

    def window(self, features: np.ndarray, padding_s: float) -> int:
        """The encoder frames for `features` and a margin of `padding_s` (see encoder_frames)."""
        return encoder_frames(features.shape[-1] - 1, padding_s)  # generate_segments leaves out the last frame

    def encode(self, features: Sequence[np.ndarray], frames: int) -> list[ctranslate2.StorageView]:
        """A batch-of-one encoder output for each of `features`, from one encoder pass over `frames`.

        The encoder has no padding mask: the scheduler batches only features whose windows are equal.
        """
        model = self._model
        content = [f[:, :-1] for f in features]  # generate_segments leaves out the last frame too
        if len(content) == 1:
            return [model.encode_window(content[0], frames)]
        # Slicing a batched output goes through host memory; on a GPU that copy is small
        # (frames / 2 x d_model per job) next to the encoder work the batch shares.
        stacked = np.stack([pad_or_trim(c, frames) for c in content])
        on_gpu = model.model.device == "cuda"
        array = np.asarray(model.model.encode(get_ctranslate2_storage(stacked), to_cpu=on_gpu))
        return [
            ctranslate2.StorageView.from_array(np.ascontiguousarray(array[row : row + 1]))
            for row in range(len(content))
        ]

    def _prompt_tokens(self, prompt: str | None) -> tuple[int, ...] | None:
        """A stream's prompt as plain-text tokens (plain_text_tokens), laid out as faster-whisper lays a string."""
        return self._encoded_prompt(prompt) if prompt else None

    def _encode_prompt(self, prompt: str) -> tuple[int, ...]:
        return tuple(plain_text_tokens(self._model.hf_tokenizer, " " + prompt.strip()))

    def _max_new_tokens(self, request: DecodeRequest, prompt_tokens: tuple[int, ...] | None) -> int:
        audio_s = request.audio.shape[0] / TARGET_RATE
        prompt = len(prompt_tokens or ())
        room = WHISPER_MAX_LENGTH - min(prompt, WHISPER_MAX_LENGTH // 2 - 1) - PROMPT_OVERHEAD_TOKENS
        if request.kind is JobKind.PARTIAL:
            budget = int(audio_s * PARTIAL_TOKENS_PER_SECOND) + PARTIAL_MIN_NEW_TOKENS
        else:
            budget = int(audio_s * TOKENS_PER_SECOND) + MIN_NEW_TOKENS
        return max(1, min(budget, room))

    def decode(
        self, request: DecodeRequest, features: np.ndarray, encoder_output: ctranslate2.StorageView
    ) -> DecodeResult:
        """Decode a request; a final heard with context keeps the words after the context.

        The context is the stream's audio from the previous utterance on: offline Whisper hears the
        speech before an utterance in the same 30 s window, and on real speech that context saves
        errors (docs/benchmarks.md). When the context did not work as context, the utterance is
        decoded alone instead: the words kept do not cover the utterance (the model stopped after the
        context), or the model did not read the context as such (_misreads_context). Speech that
        really repeats the utterance before loses only the context.
        """
        language = self._language(request, encoder_output)
        result = self._generate(request, features, encoder_output, language)
        context = request.context
        utterance_s = (request.audio.shape[0] - context.utterance_start) / TARGET_RATE if context else 0.0
        if context and (result.misreads_context or not _covers(result.words, utterance_s)):
            log.debug("context_dropped", stream_id=request.stream_id, text=result.text, reread=result.misreads_context)
            alone = dataclasses.replace(request, audio=request.audio[context.utterance_start :], context=None)
            features = self._model.feature_extractor(alone.audio)
            frames = features.shape[-1] - 1  # generate_segments leaves out the last frame
            encoder_output = self._model.encode_window(features[:, :-1], encoder_frames(frames, alone.padding_s))
            result = self._generate(alone, features, encoder_output, language)
        if not request.options.word_timestamps:
            result = dataclasses.replace(result, words=[])
        return result

    def _language(self, request: DecodeRequest, encoder_output: ctranslate2.StorageView) -> tuple[str, float]:
        """(code, probability): the language asked for, the model's only one, or detected on the utterance's own audio.

        A final heard with context would also hear the previous utterance, maybe in another language (measured
        on base: a German, a Spanish and a French utterance after one in another language were detected as
        English, German and Italian on the context's encoder output): its utterance alone is encoded once more,
        in a short window (LANGUAGE_PADDING_S), for the detection, about 0.3 s on one core for 7 s of speech.
        Any other decode, partials included, detects on its own encoder output: one decoder step. Partials do
        not keep an utterance's first detection: made on 2 s of speech it was often wrong, and the partials
        after it would all have been decoded in the wrong language (German read as Thai).
        """
        model = self._model
        if request.options.language is not None:
            return request.options.language, 1.0
        if not model.model.is_multilingual:
            return "en", 1.0
        started = time.monotonic()
        if request.context is not None:
            own = model.feature_extractor(request.audio[request.context.utterance_start :])[:, :-1]
            encoder_output = model.encode_window(own, encoder_frames(own.shape[-1], LANGUAGE_PADDING_S))
        token, probability = model.model.detect_language(encoder_output)[0][0]
        metrics.LANGUAGE_DETECTION_SECONDS.labels(kind=request.kind.value).observe(time.monotonic() - started)
        return token[2:-2], float(probability)

    def _generate(
        self,
        request: DecodeRequest,
        features: np.ndarray,
        encoder_output: ctranslate2.StorageView,
        detected: tuple[str, float],
    ) -> DecodeResult:
        """Decode a request in its language, `detected` by _language (code, probability)."""
        model = self._model
        final = request.kind is JobKind.FINAL
        language, language_probability = detected
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
        if language not in self._suppressed_tokens:
            self._suppressed_tokens[language] = get_suppressed_tokens(tokenizer, [-1])
        assert self._base_options is not None
        prompt_tokens = self._prompt_tokens(request.options.prompt)
        # Finals decode as offline Whisper does (timestamps, temperature fallback); partials are greedy,
        # without timestamps or fallback: they are only shown, and must be cheap. Word timings split
        # a decode heard with context.
        options = dataclasses.replace(
            self._base_options,
            beam_size=self.settings.beam_size if final else 1,
            temperatures=list(FALLBACK_TEMPERATURES) if final else [0.0],
            initial_prompt=prompt_tokens,
            suppress_tokens=self._suppressed_tokens[language],
            without_timestamps=not final,
            word_timestamps=final and (request.options.word_timestamps or request.context is not None),
            max_new_tokens=self._max_new_tokens(request, prompt_tokens),
        )
        model.window.padding_s = request.padding_s  # for a second window, if faster-whisper opens one
        segments = list(model.generate_segments(features, tokenizer, options, False, encoder_output))
        speech_end_s = (request.audio.shape[0] - request.silence_after) / TARGET_RATE
        context = request.context and (
            request.context.utterance_start / TARGET_RATE,
            request.context.previous_speech_end / TARGET_RATE,
        )
        result = _result(segments, speech_end_s, language, language_probability, context)
        if not final:  # a loop is cut back to its first copy: the final decides what was said
            result = dataclasses.replace(result, text=quality.without_loop(result.text))
        return result


def plain_text_tokens(tokenizer: Any, text: str) -> list[int]:
    """`text` as the tokens of its characters, never one of Whisper's special tokens.

    The tokenizers library matches its added tokens inside any text it encodes, so a client's hot word
    "<|fr|>" would switch the decoder to French and "<|translate|>" to translation. Every added token
    of Whisper's tokenizers is "<|...|>" (checked for both embedded models in tests/unit), so the text is
    encoded in pieces broken between "<" and "|": no piece holds a whole special token.
    """
    pieces = text.split("<|")
    pieces = [piece + "<" for piece in pieces[:-1]] + pieces[-1:]
    pieces = pieces[:1] + ["|" + piece for piece in pieces[1:]]
    return [token for piece in pieces if piece for token in tokenizer.encode(piece, add_special_tokens=False).ids]


def _covers(words: list[Word], utterance_s: float) -> bool:
    """Whether the words span at least half the utterance's speech (its VAD pads excluded)."""
    return bool(words) and words[-1].end - words[0].start >= 0.5 * (utterance_s - 2 * CONTEXT_PAD_S)


def _base_options(model: WhisperModel) -> TranscriptionOptions:
    """faster-whisper's transcribe() defaults, built once; each job replaces what is its own.

    Unlike transcribe(): no conditioning across windows (each utterance stands alone) and no
    prefix, ever (a forced prefix made Whisper read the audio twice).
    """
    return TranscriptionOptions(
        beam_size=1,
        best_of=5,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        log_prob_threshold=quality.LOG_PROB_THRESHOLD,
        no_speech_threshold=quality.NO_SPEECH_THRESHOLD,
        compression_ratio_threshold=quality.COMPRESSION_RATIO_THRESHOLD,
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        temperatures=list(FALLBACK_TEMPERATURES),
        initial_prompt=None,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=[-1],
        without_timestamps=False,
        max_initial_timestamp=1.0,
        word_timestamps=False,
        prepend_punctuations="\"'“¿([{-",
        append_punctuations="\"'.。,，!！?？:：”)]}、",
        multilingual=False,
        max_new_tokens=None,
        clip_timestamps="0",
        hallucination_silence_threshold=None,
        hotwords=None,
    )


def _result(
    segments: list[Segment],
    speech_end_s: float,
    language: str,
    language_probability: float,
    context: tuple[float, float] | None = None,
) -> DecodeResult:
    """The decode's text, words and signals, without what no speech supports; times from the utterance's start.

    A segment or word that starts after the last voiced frame (less TRAILING_WORD_MARGIN_S) was invented
    in the silence after the speech (the VAD's pad, the encoder window's margin); a run of words repeated
    right after itself whose second copy took less than half the first copy's time was read twice; a
    sentence the model barely believes after a finished one is a sign-off it invented.

    `context`: (utterance start, previous speech end) in the decoded audio. A segment that starts after
    the previous speech ended is the utterance's, whole (Whisper often times a segment's first word
    from the silence before it); one that ends by then is the previous utterance's (its own final has
    it); one that spans both is split by word, a word being the utterance's when it ends
    CONTEXT_SPLIT_S into it.
    """
    limit = speech_end_s - quality.TRAILING_WORD_MARGIN_S
    segments = [segment for segment in segments if segment.start < limit]
    heard = segments
    offset = 0.0
    if context is not None:
        offset, previous_end = context
        segments = [segment for segment in segments if segment.end > previous_end + CONTEXT_SPLIT_S]
    kept = [
        w
        for segment in segments
        for w in (segment.words or [])
        if w.start < limit
        and not set(w.word.strip()) <= NOT_A_WORD  # a lone "." or "..." is no word; "%" or "$" is one
        and (context is None or segment.start >= context[1] - CONTEXT_SPLIT_S or w.end > offset + CONTEXT_SPLIT_S)
    ]
    misread = context is not None and _misreads_context(heard, kept, offset)
    words = [Word(w.word.strip(), max(0.0, w.start - offset), max(0.0, w.end - offset), w.probability) for w in kept]
    kept = quality.without_invented_sign_off(kept)
    words = words[: len(kept)]
    timed = any(segment.words is not None for segment in segments)
    # Whisper's words carry their own leading space, or none ("Illinois" "-based").
    text = "".join(w.word for w in kept).strip() if timed else "".join(s.text for s in segments).strip()
    repeat = quality.repeated_run([w.word for w in words])
    if repeat is not None:
        start, length = repeat
        first, second = words[start : start + length], words[start + length : start + 2 * length]
        if second[-1].end - second[0].start < 0.5 * (first[-1].end - first[0].start):
            words = words[: start + length] + words[start + 2 * length :]
            kept = kept[: start + length] + kept[start + 2 * length :]
            text = "".join(w.word for w in kept).strip()
    if not segments:
        return DecodeResult("", [], 0.0, language, language_probability)
    logprobs = [segment.avg_logprob for segment in segments]
    signals = Quality(
        no_speech_prob=max(segment.no_speech_prob for segment in segments),
        avg_logprob=sum(logprobs) / len(logprobs),
        compression_ratio=max(segment.compression_ratio for segment in segments),
        temperature=max(segment.temperature or 0.0 for segment in segments),
    )
    signals = dataclasses.replace(
        signals,
        flags=tuple(
            quality.flags(
                signals.no_speech_prob, signals.avg_logprob, signals.compression_ratio, signals.temperature, text
            )
        ),
    )
    if repeat is not None and quality.Flag.REPETITION not in signals.flags:
        signals = dataclasses.replace(signals, flags=(*signals.flags, quality.Flag.REPETITION))
    return DecodeResult(
        text, words, math.exp(signals.avg_logprob), language, language_probability, signals, misreads_context=misread
    )


def _misreads_context(segments: list[Segment], kept: list[Any], utterance_start_s: float) -> bool:
    """Whether a decode heard with context did not read it as such: no words in the context, or the
    utterance's words begin with the first REREAD_WORDS words of the context's (it was read again)."""
    kept_ids = {id(w) for w in kept}
    heard = [
        word_key(w.word)
        for s in segments
        for w in (s.words or [])
        if id(w) not in kept_ids and w.end <= utterance_start_s + CONTEXT_SPLIT_S
    ]
    heard = [key for key in heard if key]
    own = [key for key in (word_key(w.word) for w in kept) if key]
    if not heard:
        return bool(own)
    return len(own) >= REREAD_WORDS and own[:REREAD_WORDS] == heard[:REREAD_WORDS]
