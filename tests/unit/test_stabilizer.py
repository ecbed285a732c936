"""hws.stream.stabilizer: LocalAgreement commits, continues and tells revisions."""

from __future__ import annotations

from hws.stream.stabilizer import LocalAgreement


def test_local_agreement_commits_only_agreed_prefix_and_never_retracts() -> None:
    stabilizer = LocalAgreement()
    assert stabilizer.update("the cat").stable_text == ""
    first = stabilizer.update("The cat sat on")
    assert first.stable_text == "The cat" and first.stability == 0.5
    second = stabilizer.update("the bat sat on a mat")  # contradicts the committed words
    assert second.text.startswith("The cat") and second.stable_text.startswith("The cat")
    assert stabilizer.committed_text.startswith("The cat")


def test_a_tail_decode_continues_after_the_committed_words_it_overlaps() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("one two three four five six")
    assert stabilizer.update("one two three four five six seven.").stable_text == "one two three four five six"
    # The tail began mid-word, a few seconds before the committed end.
    tail = stabilizer.update("ive six seven eight", tail=True)
    assert tail.text == "one two three four five six seven eight"
    assert tail.stable_text == "one two three four five six seven"
    # A tail that does not reach the committed words' end cannot be placed: what was shown stays.
    assert stabilizer.update("entirely other words", tail=True) == tail
    assert stabilizer.update("three four", tail=True) == tail
    assert stabilizer.update("six seven eight nine", tail=True).stable_text.endswith("seven eight")


def test_short_audio_hypotheses_do_not_commit() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("that's how this", committable=False)
    assert stabilizer.update("that's how this cop", committable=True).stable_text == ""
    assert stabilizer.update("That's how this cop collected").stable_text == "That's how this cop"


def test_later_hypotheses_continue_after_the_committed_words_they_reword() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("Boats full of men")
    assert stabilizer.update("Boats full of men and women").stable_text == "Boats full of men"
    # An independent decode spells a committed word differently: its continuation follows the committed words.
    reworded = stabilizer.update("Botes full of men and women in business suits")
    assert reworded.text == "Boats full of men and women in business suits"
    assert reworded.stable_text == "Boats full of men and women"
    # A decode that dropped a committed word still continues after them, nothing read twice.
    shorter = stabilizer.update("Boats of men and women in business suits, fresh")
    assert shorter.text == "Boats full of men and women in business suits, fresh"


def test_a_final_that_does_not_keep_the_stable_words_is_a_revision() -> None:
    stabilizer = LocalAgreement()
    stabilizer.update("the birch canoe")
    stabilizer.update("the birch canoe slid")
    assert not stabilizer.revises("The birch canoe slid on the smooth planks.")
    assert stabilizer.revises("The birch can use lid on the smooth planks.")
    assert not LocalAgreement().revises("anything at all")
