"""hws.server.settings: flags over environment over defaults, clear refusals, docs/configuration.md's table."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hws.server.settings import ConfigError, Settings, env_name, load_settings


def test_the_configuration_table_lists_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [
        field.name
        for field in dataclasses.fields(Settings)
        if f"| `--{field.name.replace('_', '-')}` | `{env_name(field.name)}` |" not in readme
    ]
    assert not missing, f"settings missing from the configuration table in docs/configuration.md: {missing}"


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
