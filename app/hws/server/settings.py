"""Server settings from command-line flags and HWS_* environment variables.

Every setting has a flag and an environment variable; a flag wins over the
environment, the environment over the default. Everything is validated once at
start so that a bad value stops the server with a message naming the setting,
instead of failing on the first stream.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from hws.asr.whisper.embedded import EMBEDDED_BASE_MODEL, EMBEDDED_MODEL
from hws.stream.vad import AGGRESSIVENESS, ENDPOINT_SILENCE_MS, MAX_UTTERANCE_S, VadParams

_VAD_DEFAULTS = VadParams()
_Part = TypeVar("_Part")
DEVICES = ("auto", "cpu", "cuda")
COMPUTE_TYPES = (
    "auto",
    "default",
    "int8",
    "int8_float16",
    "int8_float32",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
LOG_FORMATS = ("auto", "json", "console")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the setting and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    metrics_port: int = 8000
    metrics_host: str = "127.0.0.1"  # loopback: set 0.0.0.0 where something scrapes it from outside
    # Model
    model: str = EMBEDDED_MODEL
    model_cache_dir: str = str(Path.home() / ".cache" / "hws" / "models")
    # A model that fails to load (a download with no network) stops the server with the reason; true: retry it.
    model_load_wait: bool = False
    device: str = "auto"
    compute_type: str = "auto"
    decode_workers: int = 0  # 0: auto (one per CPU core on CPU, 1 on GPU)
    cpu_threads: int = 0  # 0: auto (the cores shared out among the decode workers)
    beam_size: int = 1
    # Scheduling: decodes from different streams share one batched encoder pass
    max_batch_size: int = 0  # 0: auto (8 on GPU, 1 on CPU, where batching measured no gain)
    batch_wait_ms: int = 0  # how long a lone job waits for company before running
    partial_max_age_s: float = 2.0  # a partial queued longer than this is stale and dropped
    # Silence after the audio in the encoder's window (30: Whisper's fixed 30 s). Finals need a wide margin:
    # with 3 s, tiny.en read real utterances twice and looped; partials are only shown, so they stay cheap.
    encoder_padding_s: float = 15.0
    partial_encoder_padding_s: float = 3.0
    # Stream defaults, from the segmenter's own (a client may override the VAD ones per stream)
    vad_aggressiveness: int = _VAD_DEFAULTS.aggressiveness
    vad_frame_ms: int = _VAD_DEFAULTS.frame_ms
    endpoint_silence_ms: int = _VAD_DEFAULTS.endpoint_silence_ms
    max_utterance_s: float = _VAD_DEFAULTS.max_utterance_s
    min_speech_ms: int = _VAD_DEFAULTS.min_speech_ms
    speech_pad_ms: int = _VAD_DEFAULTS.pad_ms
    partial_interval_ms: int = 700
    # Limits
    max_streams: int = 16
    # 0: off. Behind a load balancer every stream comes from its few addresses and connections: keep them off there.
    max_streams_per_connection: int = 0
    max_streams_per_peer: int = 0
    max_message_bytes: int = 4 * 1024 * 1024
    max_prompt_chars: int = 1000
    max_hotwords: int = 50
    max_hotword_chars: int = 100
    stream_idle_timeout_s: float = 30.0
    config_timeout_s: float = 5.0  # a stream must send its config this soon; it holds no slot until then
    # A stream whose audio over the last window, and over its whole life, is under this share of real time
    # is ended (a trickle that would hold its slot for ever); silence sent at real time is audio. 0: off.
    min_audio_pace: float = 0.5
    audio_pace_window_s: float = 30.0
    backlog_timeout_s: float = 10.0
    decode_timeout_s: float = 60.0
    grace_period_s: float = 30.0
    # Behind a load balancer a stream must end before the deregistration delay runs out: the server
    # ends it at the first pause after this age (then hard after the overrun), and the client resumes.
    max_stream_age_s: float = 0.0  # 0: off (the ECS task definition sets 300: terraform/modules/render)
    max_stream_age_overrun_s: float = 60.0
    fault_injection: str = ""  # testing aid: "raise" or "hang:SECONDS" for decodes whose prompt has HWS-FAULT
    # Surfaces and security
    reflection: bool = True
    compat: bool = True  # the original AudioTranscriberService / HealthCheckService
    api_keys_file: str = ""  # one key per line; empty: no authentication
    tls_cert: str = ""  # PEM certificate chain; with tls_key, serve TLS instead of plaintext
    tls_key: str = ""
    log_format: str = "auto"
    log_level: str = "info"
    # Load as CloudWatch Embedded Metric Format lines on stdout (app/hws/server/emf.py); 0: off
    emf_interval_s: float = 0.0
    emf_namespace: str = "HWS"
    emf_service: str = "hws"

    def pick(self, part: type[_Part]) -> _Part:
        """The settings one part reads, as that part's own dataclass (its fields are named as here)."""
        return part(**{field.name: getattr(self, field.name) for field in dataclasses.fields(part)})  # type: ignore[arg-type]

    def validate(self) -> Settings:
        _check(1 <= self.port <= 65535, "port", "must be 1-65535")
        _check(0 <= self.metrics_port <= 65535, "metrics_port", "must be 0-65535 (0 disables the metrics endpoint)")
        _check(self.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}")
        _check(self.compute_type in COMPUTE_TYPES, "compute_type", f"must be one of {', '.join(COMPUTE_TYPES)}")
        _check(0 <= self.decode_workers <= 64, "decode_workers", "must be 0-64 (0: auto)")
        _check(self.cpu_threads >= 0, "cpu_threads", "must be >= 0 (0: auto)")
        _check(1 <= self.beam_size <= 10, "beam_size", "must be 1-10")
        _check(0 <= self.max_batch_size <= 64, "max_batch_size", "must be 0-64 (0: auto)")
        _check(0 <= self.batch_wait_ms <= 1000, "batch_wait_ms", "must be 0-1000")
        _check(0.1 <= self.config_timeout_s <= 300, "config_timeout_s", "must be 0.1-300")
        _check(0 <= self.min_audio_pace <= 1, "min_audio_pace", "must be 0-1 (a share of real time; 0: off)")
        _check(5 <= self.audio_pace_window_s <= 3600, "audio_pace_window_s", "must be 5-3600")
        for name in ("max_streams_per_connection", "max_streams_per_peer"):
            _check(getattr(self, name) >= 0, name, "must be >= 0 (0: off)")
        _check(self.partial_max_age_s > 0, "partial_max_age_s", "must be > 0")
        _check(0 <= self.encoder_padding_s <= 30, "encoder_padding_s", "must be 0-30 (30: Whisper's fixed window)")
        _check(
            0 <= self.partial_encoder_padding_s <= 30,
            "partial_encoder_padding_s",
            "must be 0-30 (30: Whisper's fixed window)",
        )
        _check(bool(self.tls_cert) == bool(self.tls_key), "tls_cert", "tls_cert and tls_key go together")
        for name in ("api_keys_file", "tls_cert", "tls_key"):
            path = getattr(self, name)
            _check(not path or Path(path).is_file(), name, f"file not found: {path}")
        _check(self.vad_aggressiveness in AGGRESSIVENESS, "vad_aggressiveness", f"must be {AGGRESSIVENESS}")
        _check(self.vad_frame_ms in (10, 20, 30), "vad_frame_ms", "must be 10, 20 or 30 (webrtcvad frame sizes)")
        _check(self.endpoint_silence_ms in ENDPOINT_SILENCE_MS, "endpoint_silence_ms", f"must be {ENDPOINT_SILENCE_MS}")
        window = "(Whisper's window is 30 s)"
        _check(self.max_utterance_s in MAX_UTTERANCE_S, "max_utterance_s", f"must be {MAX_UTTERANCE_S} {window}")
        _check(0 <= self.min_speech_ms <= 2000, "min_speech_ms", "must be 0-2000")
        _check(0 <= self.speech_pad_ms <= 1000, "speech_pad_ms", "must be 0-1000")
        _check(100 <= self.partial_interval_ms <= 10000, "partial_interval_ms", "must be 100-10000")
        _check(self.max_streams >= 1, "max_streams", "must be >= 1")
        _check(64 * 1024 <= self.max_message_bytes <= 64 * 1024 * 1024, "max_message_bytes", "must be 64 KiB-64 MiB")
        _check(self.stream_idle_timeout_s > 0, "stream_idle_timeout_s", "must be > 0")
        _check(self.grace_period_s >= 0, "grace_period_s", "must be >= 0")
        _check(0 <= self.max_stream_age_s <= 86400, "max_stream_age_s", "must be 0-86400 (0: off)")
        _check(0 <= self.max_stream_age_overrun_s <= 3600, "max_stream_age_overrun_s", "must be 0-3600")
        _check(self.backlog_timeout_s > 0, "backlog_timeout_s", "must be > 0")
        _check(self.decode_timeout_s > 0, "decode_timeout_s", "must be > 0")
        _check(
            re.fullmatch(r"|raise|hang:\d+(\.\d+)?", self.fault_injection) is not None,
            "fault_injection",
            "must be empty, 'raise' or 'hang:SECONDS'",
        )
        _check(self.log_format in LOG_FORMATS, "log_format", f"must be one of {', '.join(LOG_FORMATS)}")
        _check(
            self.log_level.lower() in ("debug", "info", "warning", "error"),
            "log_level",
            "must be debug, info, warning or error",
        )
        _check(bool(self.model.strip()), "model", "must not be empty")
        _check(0 <= self.emf_interval_s <= 3600, "emf_interval_s", "must be 0-3600 (0: off)")
        _check(
            0 < len(self.emf_namespace) <= 255 and not self.emf_namespace.startswith("AWS/"),
            "emf_namespace",
            "must be 1-255 characters, not starting with AWS/",
        )
        _check(0 < len(self.emf_service) <= 1024, "emf_service", "must be 1-1024 characters")
        return self


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise setting_error(name, rule)


def setting_error(name: str, rule: str) -> ConfigError:
    return ConfigError(f"invalid setting {name} (--{name.replace('_', '-')} / {env_name(name)}): {rule}")


def env_name(field: str) -> str:
    return "HWS_" + field.upper()


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    # ArgumentTypeError: argparse shows this message as it is (a ValueError would read "invalid _parse_bool value").
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (use true or false)")


HELP = {
    "host": "address to listen on",
    "port": "gRPC port",
    "metrics_port": "Prometheus /metrics HTTP port (0 disables it)",
    "metrics_host": "address the metrics endpoint listens on (empty: --host); it has no authentication, so the"
    " default is loopback: set 0.0.0.0 where a scraper reaches it from outside the host or container",
    "model": f"'{EMBEDDED_MODEL}' (bundled, offline), '{EMBEDDED_BASE_MODEL}' (multilingual, offline, the extra "
    "'base'), a CTranslate2 model folder, or a model name such as large-v3",
    "model_cache_dir": f"where named models are downloaded and {EMBEDDED_BASE_MODEL} is joined",
    "model_load_wait": "true: a model that fails to load (a download that failed) is retried, 1 s doubling to 60 s, "
    "health NOT_SERVING meanwhile; false: the server exits at once with the reason (true/false)",
    "device": "auto (CUDA when CTranslate2 sees a GPU and can compute on it, else the CPU), cpu or cuda",
    "compute_type": "auto (float16 on GPU, int8 on CPU) or a CTranslate2 compute type",
    "decode_workers": "decodes run at once, each on its own CTranslate2 replica (0: one per core on CPU, 1 on GPU)",
    "cpu_threads": "CTranslate2 threads per decode worker on CPU (0: the cores divided among the workers)",
    "beam_size": "beam size for final decodes (partials are greedy)",
    "max_batch_size": "most decodes batched into one encoder pass (0: 8 on GPU, 1 on CPU)",
    "batch_wait_ms": "how long a lone decode waits for others to batch with",
    "partial_max_age_s": "a partial decode queued longer than this is dropped as stale",
    "encoder_padding_s": "final decodes: silence added after the audio in the encoder's window (30: Whisper's 30 s)",
    "partial_encoder_padding_s": "partial decodes: silence added after the audio in the encoder's window",
    "vad_aggressiveness": "default webrtcvad aggressiveness 0-3",
    "vad_frame_ms": "webrtcvad frame length: 10, 20 or 30 ms",
    "endpoint_silence_ms": "default silence that ends an utterance",
    "max_utterance_s": "default forced cut for an utterance without a pause",
    "min_speech_ms": "utterances with less voiced audio are not sent to the model",
    "speech_pad_ms": "audio kept before speech starts and after it ends",
    "partial_interval_ms": "new audio between two partial decodes of an utterance",
    "max_streams": "concurrent streams; more are refused with RESOURCE_EXHAUSTED",
    "max_streams_per_connection": "open streams one client connection may hold; more are RESOURCE_EXHAUSTED "
    "(0: off; keep off behind a load balancer, whose connections carry many clients)",
    "max_streams_per_peer": "open streams one client address may hold, over all its connections; more are "
    "RESOURCE_EXHAUSTED (0: off; keep off behind a load balancer)",
    "min_audio_pace": "a stream whose audio over the last --audio-pace-window-s, and over its whole life, is under "
    "this share of real time is ended with DEADLINE_EXCEEDED (silence sent at real time counts; 0: off)",
    "audio_pace_window_s": "the window (and the grace at a stream's start) of --min-audio-pace",
    "max_message_bytes": "largest gRPC message accepted",
    "max_prompt_chars": "longest initial prompt accepted",
    "max_hotwords": "most hot words accepted",
    "max_hotword_chars": "longest hot word accepted",
    "config_timeout_s": "a stream that sends no config this soon after opening is closed (it holds no slot before)",
    "stream_idle_timeout_s": "a stream with no message for this long is closed",
    "grace_period_s": "on SIGTERM, time to finish open streams before exiting",
    "max_stream_age_s": "a stream this old ends at its next pause with UNAVAILABLE and final_offset_s, to resume "
    "elsewhere (0: off; not applied to the compat service, whose clients cannot resume)",
    "max_stream_age_overrun_s": "a stream still in an utterance this long after --max-stream-age-s ends mid-utterance",
    "backlog_timeout_s": "a stream whose finals are this long behind is ended with RESOURCE_EXHAUSTED and a retry hint",
    "decode_timeout_s": "watchdog: a decode running longer fails its streams and turns health NOT_SERVING",
    "fault_injection": "testing aid, off when empty: 'raise' or 'hang:SECONDS' for decodes prompted with HWS-FAULT",
    "reflection": "serve gRPC server reflection (true/false)",
    "compat": "serve the original AudioTranscriberService and HealthCheckService (true/false)",
    "api_keys_file": "file of API keys, one per line; clients send one as 'authorization: Bearer KEY' (empty: open)",
    "tls_cert": "PEM certificate chain for TLS on the server itself",
    "tls_key": "PEM private key for TLS on the server itself",
    "log_format": "auto (console on a TTY, JSON otherwise), json or console",
    "log_level": "debug, info, warning or error",
    "emf_interval_s": "seconds between CloudWatch EMF load lines on stdout (0: off)",
    "emf_namespace": "CloudWatch namespace of the EMF metrics",
    "emf_service": "value of the Service dimension of the EMF metrics",
}


def _converter(kind: Any) -> Callable[[str], Any]:
    if kind in (bool, "bool"):
        return _parse_bool
    if kind in (int, "int"):
        return int
    if kind in (float, "float"):
        return float
    return str


def _shown_default(value: object) -> str:
    return "empty" if value == "" else str(value)


# --help by purpose. A setting in no group is still a flag, listed last under "other" (a test checks there is none).
GROUPS: dict[str, tuple[str, ...]] = {
    "serving": (
        "host",
        "port",
        "reflection",
        "compat",
        "grace_period_s",
        "max_stream_age_s",
        "max_stream_age_overrun_s",
    ),
    "model": (
        "model",
        "model_cache_dir",
        "model_load_wait",
        "device",
        "compute_type",
        "decode_workers",
        "cpu_threads",
        "beam_size",
        "max_batch_size",
        "batch_wait_ms",
        "partial_max_age_s",
        "encoder_padding_s",
        "partial_encoder_padding_s",
    ),
    "stream defaults (a client may set its own)": (
        "vad_aggressiveness",
        "vad_frame_ms",
        "endpoint_silence_ms",
        "max_utterance_s",
        "min_speech_ms",
        "speech_pad_ms",
        "partial_interval_ms",
    ),
    "limits": (
        "max_streams",
        "max_streams_per_connection",
        "max_streams_per_peer",
        "max_message_bytes",
        "max_prompt_chars",
        "max_hotwords",
        "max_hotword_chars",
        "stream_idle_timeout_s",
        "config_timeout_s",
        "min_audio_pace",
        "audio_pace_window_s",
        "backlog_timeout_s",
        "decode_timeout_s",
    ),
    "security": ("api_keys_file", "tls_cert", "tls_key"),
    "observability": (
        "metrics_port",
        "metrics_host",
        "log_format",
        "log_level",
        "emf_interval_s",
        "emf_namespace",
        "emf_service",
    ),
}
# Accepted but left out of --help: testing aids (docs/configuration.md lists them).
HIDDEN = frozenset({"fault_injection"})


def version() -> str:
    try:
        return metadata.version("hosted-whisper-streaming")
    except metadata.PackageNotFoundError:
        return "dev"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hws-server",
        usage="%(prog)s [--FLAG VALUE ...]  (--help lists the flags by purpose)",
        description="Hosted Whisper Streaming: gRPC streaming speech-to-text server.",
        epilog="Every flag can also be set with an environment variable HWS_<NAME> (e.g. HWS_MAX_STREAMS=32).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    grouped = {name for names in GROUPS.values() for name in names}
    sections = [*GROUPS.items(), ("other", tuple(name for name in fields if name not in grouped | HIDDEN))]
    for title, names in sections:
        if names:
            group = parser.add_argument_group(title)
            for name in names:
                _add_flag(group, fields[name])
    for name in sorted(HIDDEN):
        _add_flag(parser, fields[name], hidden=True)
    return parser


def _add_flag(target: argparse._ActionsContainer, field: dataclasses.Field[Any], hidden: bool = False) -> None:
    shown = f"{HELP[field.name]} (env {env_name(field.name)}, default {_shown_default(field.default)})"
    target.add_argument(
        "--" + field.name.replace("_", "-"),
        dest=field.name,
        type=_converter(field.type),
        default=None,
        metavar=field.name.upper(),
        help=argparse.SUPPRESS if hidden else shown,
    )


def changed_settings(settings: Settings) -> dict[str, Any]:
    """The settings that differ from their defaults: what the start-up log lists."""
    return {
        field.name: getattr(settings, field.name)
        for field in dataclasses.fields(Settings)
        if getattr(settings, field.name) != field.default
    }


def load_settings(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Flags over environment over defaults; raises ConfigError with a clear message."""
    environ = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        flag_value = getattr(args, field.name)
        if flag_value is not None:
            values[field.name] = flag_value
            continue
        raw = environ.get(env_name(field.name))
        if raw is None or raw == "":
            continue
        try:
            values[field.name] = _converter(field.type)(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"invalid setting {env_name(field.name)}={raw!r}: {exc}") from None
    return Settings(**values).validate()
