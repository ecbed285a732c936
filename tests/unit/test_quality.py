"""hws.asr.quality: repeated runs found, looping partials cut."""

from __future__ import annotations

import pytest

from hws.asr.quality import repeated_run, without_loop


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("I am sitting in a room. I am sitting in a room.", (0, 6)),
        ("we're just saying some words we're just saying some words", (0, 5)),
        ("good good good good good good good good", (0, 4)),
        ("no no no, I said no", None),  # short runs are ordinary speech
        ("ask not what your country can do for you, ask what you can do", None),
    ],
)
def test_a_run_repeated_right_after_itself_is_found(text: str, found: tuple[int, int] | None) -> None:
    assert repeated_run(text.split()) == found


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("uh uh uh uh uh uh uh uh uh", "uh"),
        ("The grass, the grass, the grass,", "The grass,"),
        ("Kind of a... Kind of a... Kind", "Kind of a..."),  # the budget cut the third copy short
        ("I am sitting in a room. I am sitting in a room.", "I am sitting in a room."),
        ("no no, very very good", "no no, very very good"),  # twice is ordinary speech
        ("we had had it", "we had had it"),
    ],
)
def test_a_partial_that_loops_is_cut_to_the_first_copy(text: str, kept: str) -> None:
    assert without_loop(text) == kept
