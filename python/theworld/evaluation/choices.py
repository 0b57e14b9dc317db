"""Answer extraction from free text: the chosen letter of a multiple-choice question, or a true/false verdict.

`extract_choice(text, num_choices, choices)` reads the letter a model chose, trying these rules in order and
stopping at the first that finds a letter among the first `num_choices` (A, B, ...; other letters are ignored):

1. an explicit marker: "Answer: B", "the answer is (C)", "correct option is d)", "choice: A";
2. a parenthesized letter anywhere: "(B)", "(b)" — the first one;
3. a leading letter with a delimiter: "A", "A.", "b)", "C:", "B - left" (the whole text, or the first token);
4. a refusal ("I cannot tell", "sorry", "unable to determine", ...) → None, so a letter named inside a refusal
   ("I can't tell whether A or B is closer") is not taken for an answer;
5. the text of a choice, as whole words: "left" for choices ["left", "right"] — exact text first, then the one
   choice whose text occurs (a choice contained in another matched choice is dropped; two unrelated → None);
6. a standalone capital letter anywhere ("I pick B"), the first one — but **"A" followed by a lower-case word is
   the English article** ("A cat is on the left") and is skipped, unless that word is a verb that makes "A" a
   label ("A is closer", "A looks darker"; see `_LABEL_VERBS`).

Markdown emphasis (`**B**`, `_B_`, backticks) is removed first. No rule matching → None ("unparseable").
`answer_letter("(A)") == "A"` reads BLINK's reference answers.

`extract_true_false(text)` reads a binary verdict (VSR): the first "true"/"false" word ("not true" is False),
else a leading "yes"/"no"; a refusal or neither → None.

[Contract] both functions are pure and never raise on any string; a returned letter is always one of the first
`num_choices` capital letters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# Verbs after which a leading capital "A" names an option or a point ("A is closer"), not the article.
_LABEL_VERBS = frozenset(
    {
        *("is", "was", "has", "had", "looks", "look", "seems", "seem", "appears", "appear", "would", "will"),
        *("should", "can", "could", "does", "did", "matches", "match", "shows", "show", "contains", "contain"),
        *("corresponds", "correspond"),
    }
)
_EMPHASIS = re.compile(r"[*_`]+")
_MARKER = re.compile(  # the keywords are case-insensitive, the letter is not ("the answer is a cat")
    r"\b(?i:answer|option|choice)\b(?:\s+(?i:is|would\s+be|should\s+be|will\s+be))?\s*(?:[:=\-]|(?i:is\b))?\s*"
    r"(?:\((?P<paren>[A-Za-z])\)|(?P<upper>[A-Z])\b|(?P<lower>[a-z])(?=[).:,]|\s*$))"
)
_PAREN = re.compile(r"\(([A-Za-z])\)")
_LEADING = re.compile(r"^\(?([A-Za-z])(?:\s*[).:,\-]|\s*$)")
_CAPITAL = re.compile(r"(?<![\w'])([A-Z])(?![\w'])")
_WORD_AFTER = re.compile(r"\s+([a-z]+)")
_REFUSAL = re.compile(
    r"\b(?:cannot|can ?not|can't|can’t|unable|not able|not possible|impossible|sorry|unsure|not sure|"
    r"don't know|do not know|no way to (?:tell|know|determine))\b",
    re.IGNORECASE,
)
_TRUE_FALSE = re.compile(r"\b(not\s+)?(true|false)\b", re.IGNORECASE)
_YES_NO = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def answer_letter(answer: str) -> str:
    """A reference answer "(A)" / "A" / " (b) " → "A"; anything else → ValueError naming the value."""
    match = re.fullmatch(r"\s*\(?\s*([A-Za-z])\s*\)?\s*", str(answer))
    if match is None:
        raise ValueError(f"answer {answer!r}: expected a choice letter like '(A)'")
    return match.group(1).upper()


def _in_range(letter: str, num_choices: int) -> str | None:
    letter = letter.upper()
    return letter if letter in LETTERS[:num_choices] else None


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _choice_by_text(text: str, choices: Sequence[str]) -> str | None:
    """The letter of the choice whose text the answer is, or the only one it mentions (whole words)."""
    answer = _words(text)
    normalized = [_words(choice) for choice in choices]
    for index, choice in enumerate(normalized):
        if choice and answer == choice:
            return LETTERS[index]
    found = [i for i, choice in enumerate(normalized) if choice and re.search(rf"\b{re.escape(choice)}\b", answer)]
    # A choice that is part of another matched one ("left" inside "top left") is not a separate mention.
    found = [i for i in found if not any(j != i and normalized[i] in normalized[j] for j in found)]
    return LETTERS[found[0]] if len(found) == 1 else None


def _standalone_capital(text: str, num_choices: int) -> str | None:
    for match in _CAPITAL.finditer(text):
        letter = _in_range(match.group(1), num_choices)
        if letter is None:
            continue
        if letter == "A":
            after = _WORD_AFTER.match(text, match.end())
            if after is not None and after.group(1) not in _LABEL_VERBS:
                continue  # the article: "A cat is ..."
        return letter
    return None


def extract_choice(text: str, num_choices: int, choices: Sequence[str] | None = None) -> str | None:
    """The letter chosen in `text` (see the module docstring for the rules), or None when there is none."""
    if num_choices <= 0:
        return None
    num_choices = min(num_choices, len(LETTERS))
    cleaned = _EMPHASIS.sub("", str(text)).strip()
    if not cleaned:
        return None
    for match in _MARKER.finditer(cleaned):
        found = match.group("paren") or match.group("upper") or match.group("lower")
        if found and (letter := _in_range(found, num_choices)):
            return letter
    for match in _PAREN.finditer(cleaned):
        if letter := _in_range(match.group(1), num_choices):
            return letter
    leading = _LEADING.match(cleaned)
    if leading and (letter := _in_range(leading.group(1), num_choices)):
        # The regex wants a delimiter or the end after the letter: "a)" or "A." count, the article in "A cat" not.
        return letter
    if _REFUSAL.search(cleaned):
        return None
    if choices and (letter := _choice_by_text(cleaned, list(choices)[:num_choices])):
        return letter
    return _standalone_capital(cleaned, num_choices)


def extract_true_false(text: str) -> bool | None:
    """True/False from a verdict: the first "true"/"false" word ("not true" → False), else a leading yes/no."""
    cleaned = _EMPHASIS.sub("", str(text)).strip()
    match = _TRUE_FALSE.search(cleaned)
    if match is not None:
        value = match.group(2).lower() == "true"
        return not value if match.group(1) else value
    if _REFUSAL.search(cleaned):
        return None
    yes_no = _YES_NO.match(cleaned)
    return None if yes_no is None else yes_no.group(1).lower() == "yes"
