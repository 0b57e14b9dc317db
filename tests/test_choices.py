"""Answer extraction: golden free-text answers → choice letter / true-false verdict, and the reference letters."""

from __future__ import annotations

import pytest

from theworld.evaluation.choices import LETTERS, answer_letter, extract_choice, extract_true_false

LEFT_RIGHT = ["left", "right"]
DEPTH = ["A is closer", "B is closer"]
COUNTS = ["0", "1", "2", "3"]

# (model output, number of choices, choice texts or None, expected letter or None)
GOLDEN: list[tuple[str, int, list[str] | None, str | None]] = [
    ("(A)", 2, None, "A"),
    ("A", 2, None, "A"),
    ("A.", 2, None, "A"),
    ("B", 4, None, "B"),
    ("Answer: B", 4, None, "B"),
    ("answer: b", 4, None, "B"),
    ("The answer is (C) because the reflection is brighter.", 4, None, "C"),
    ("The correct option is D.", 4, None, "D"),
    ("**B**", 2, None, "B"),
    ("**(B)** B is closer", 2, DEPTH, "B"),
    ("b) right", 2, LEFT_RIGHT, "B"),
    ("c.", 4, None, "C"),
    ("(b)", 2, None, "B"),
    ("left", 2, LEFT_RIGHT, "A"),
    ("Right.", 2, LEFT_RIGHT, "B"),
    ("The cat is to the right of the dog.", 2, LEFT_RIGHT, "B"),
    ("B is closer", 2, DEPTH, "B"),
    ("A is closer to the camera.", 2, None, "A"),
    ("2", 4, COUNTS, "C"),
    ("There are 3 cars in the picture.", 4, COUNTS, "D"),
    # The article "A" is never taken when a clearer marker exists, nor on its own.
    ("A cat is sitting on the mat, so the answer is (B).", 2, None, "B"),
    ("A cat is sitting on the mat. B", 2, None, "B"),
    ("A dog is on the left.", 2, LEFT_RIGHT, "A"),  # by the choice text "left", not by the article
    ("A dog is on the sofa.", 2, None, None),
    # Refusals and non-answers.
    ("I cannot tell whether A or B is closer.", 2, None, None),
    ("Sorry, I can't determine that from the image.", 2, None, None),
    ("I'm unable to answer.", 4, None, None),
    ("", 2, None, None),
    ("   ", 2, None, None),
    ("The picture shows a kitchen.", 2, None, None),
    # Letters beyond the number of choices are not answers.
    ("(E)", 4, None, None),
    ("Answer: E, or maybe (B)", 4, None, "B"),
    ("I think B", 2, None, "B"),
    ("Point B, where the child sits, is closer.", 2, None, "B"),
    ("It is on the left of the right box", 2, LEFT_RIGHT, None),  # both choice texts: ambiguous
    ("top left", 2, ["left", "top left"], "B"),  # "left" is part of the matched "top left"
]


@pytest.mark.parametrize(("text", "num_choices", "choices", "expected"), GOLDEN)
def test_extract_choice_golden(text: str, num_choices: int, choices: list[str] | None, expected: str | None) -> None:
    assert extract_choice(text, num_choices, choices) == expected


def test_golden_set_is_large_and_covers_every_outcome() -> None:
    assert len(GOLDEN) >= 25
    outcomes = {expected for *_, expected in GOLDEN}
    assert {"A", "B", "C", "D", None} <= outcomes


@pytest.mark.parametrize("num_choices", [1, 2, 3, 4, 5])
def test_extracted_letter_is_always_in_range(num_choices: int) -> None:
    for text, *_ in GOLDEN:
        letter = extract_choice(text, num_choices)
        assert letter is None or letter in LETTERS[:num_choices]
    assert extract_choice("(A)", 0) is None


@pytest.mark.parametrize(("answer", "letter"), [("(A)", "A"), ("(B)", "B"), ("A", "A"), (" (d) ", "D"), ("(E)", "E")])
def test_answer_letter(answer: str, letter: str) -> None:
    assert answer_letter(answer) == letter


@pytest.mark.parametrize("bad", ["hidden", "", "(AB)", "A is closer"])
def test_answer_letter_rejects_non_letters_in_one_line(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a choice letter") as error:
        answer_letter(bad)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("True", True),
        ("False", False),
        ("false.", False),
        ("**True**", True),
        ("The statement is true.", True),
        ("This is not true: the cat is under the bed.", False),
        ("It is not false.", True),
        ("Yes", True),
        ("No, the umbrella is above the bed.", False),
        ("There is no way to tell.", None),
        ("I cannot see the picture.", None),
        ("The umbrella is red.", None),
        ("", None),
    ],
)
def test_extract_true_false(text: str, expected: bool | None) -> None:
    assert extract_true_false(text) is expected
