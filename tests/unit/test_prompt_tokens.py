"""A client's prompt and hot words reach the decoder as text: no string becomes one of Whisper's special tokens,
for every special token of both embedded models' tokenizers (no model load; base-embedded is joined once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tokenizers

from hws.asr.whisper.backend import plain_text_tokens
from hws.asr.whisper.embedded import EMBEDDED_BASE_MODEL, EMBEDDED_MODEL, model_folder


@pytest.fixture(scope="module", params=[EMBEDDED_MODEL, EMBEDDED_BASE_MODEL])
def tokenizer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tokenizers.Tokenizer:
    folder = model_folder(request.param, tmp_path_factory.mktemp("models"))
    return tokenizers.Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))


def test_no_client_string_becomes_a_special_token(tokenizer: tokenizers.Tokenizer) -> None:
    special = tokenizer.get_added_tokens_decoder()
    assert len(special) > 100  # <|endoftext|>, the languages, <|translate|>, <|notimestamps|>, ...
    assert all(token.content.startswith("<|") for token in special.values())  # what plain_text_tokens relies on
    for token in special.values():
        for text in (f" {token.content}", f" say {token.content}{token.content} now", f"<{token.content}|>"):
            assert set(tokenizer.encode(text, add_special_tokens=False).ids) & set(special)  # the tokenizer's own
            ids = plain_text_tokens(tokenizer, text)
            assert not set(ids) & set(special), (token.content, text)
            assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_plain_text_is_encoded_as_before(tokenizer: tokenizers.Tokenizer) -> None:
    for text in (" The finance team", " Kubernetes, gRPC, Whisper", " a < b | c > d", " |> <"):
        assert plain_text_tokens(tokenizer, text) == tokenizer.encode(text, add_special_tokens=False).ids
