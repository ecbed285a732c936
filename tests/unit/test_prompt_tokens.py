"""A client's prompt and hot words reach the decoder as text: no string becomes one of Whisper's special tokens,
for every special token of both embedded models' tokenizers (their tokenizer.json, no model load)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import tokenizers

from hws.asr.whisper.backend import plain_text_tokens
from hws.asr.whisper.embedded import EMBEDDED_BASE_MODEL, EMBEDDED_MODEL, SPLIT_MODELS, missing_packages, model_folder

# Whisper's timestamp tokens follow the added ones in the model's vocabulary, not in its tokenizer.json.
TIMESTAMPS = ("<|0.00|>", "<|1.50|>", "<|30.00|>")


def tokenizer_file(name: str) -> Path:
    """The model's tokenizer.json; a split model's straight from its package (the join checks that same file)."""
    if name not in SPLIT_MODELS:
        return model_folder(name, "") / "tokenizer.json"
    package, file = next(entry for entry in SPLIT_MODELS[name].files if entry[1] == "tokenizer.json")
    return Path(str(resources.files(package) / "data" / file))


@pytest.fixture(scope="module", params=[EMBEDDED_MODEL, EMBEDDED_BASE_MODEL])
def tokenizer(request: pytest.FixtureRequest) -> tokenizers.Tokenizer:
    problem = missing_packages(request.param)
    if problem is not None:
        pytest.skip(problem)
    return tokenizers.Tokenizer.from_file(str(tokenizer_file(request.param)))


def test_no_client_string_becomes_a_special_token(tokenizer: tokenizers.Tokenizer) -> None:
    special = tokenizer.get_added_tokens_decoder()
    eot = tokenizer.token_to_id("<|endoftext|>")
    assert len(special) > 100  # <|endoftext|>, the languages, <|translate|>, <|notimestamps|>, ...
    assert min(special) == eot, "every special token id is eot's or above"
    assert all(token.content.startswith("<|") for token in special.values())  # what plain_text_tokens relies on
    contents = [token.content for token in special.values()]
    for content in (*contents, *TIMESTAMPS):
        for text in (f" {content}", f" say {content}{content} now", f"<{content}|>", f" Kubernetes, {content}"):
            ids = plain_text_tokens(tokenizer, text)
            assert all(i < eot for i in ids), (content, text, ids)
            assert tokenizer.decode(ids, skip_special_tokens=False) == text
    every = " ".join(contents)  # all at once, as one prompt
    assert set(special) <= set(tokenizer.encode(every, add_special_tokens=False).ids), "the tokenizer's own reading"
    ids = plain_text_tokens(tokenizer, every)
    assert max(ids) < eot
    assert tokenizer.decode(ids, skip_special_tokens=False) == every


def test_plain_text_is_encoded_as_before(tokenizer: tokenizers.Tokenizer) -> None:
    for text in (" The finance team", " Kubernetes, gRPC, Whisper", " a < b | c > d", " |> <", " <| |>"):
        assert plain_text_tokens(tokenizer, text) == tokenizer.encode(text, add_special_tokens=False).ids
