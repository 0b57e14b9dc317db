"""Reading answers out of free text: lengths in meters, clock directions, yes/no, and which region is named.

Pure functions used by the deterministic SpatialRGPT-Bench judge (`theworld.evaluation.judges`) on both the
ground-truth answers ("The width of Region [0] is 1.2 meters.", "6.91 feet", "Region [0] will find Region [1] around
the 10 o'clock direction.", "Incorrect, Region [0] is not smaller in size than Region [1].") and model predictions.

[Contract] a number is never read from a region tag ("Region [0]", "[1]", "region 2") nor from a clock time
("10 o'clock", "9:00") when a length is wanted; a unit-less number is used (as meters) only when the text has no
number with a unit, and never in a refusal ("I cannot determine ..."). Each extractor returns None rather than guess:
a refusal, no answer, or an ambiguous one ("yes and no", "Region [0] and Region [1]").
Several lengths → the first one (a range "2-3 m" / "between 2 and 3 meters" counts as its midpoint; "5 feet 3
inches" as one length).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# --- normalization ---------------------------------------------------------------------------------------------------
_TRANSLATE = str.maketrans({"’": "'", "‘": "'", "′": "'", "″": '"', "“": '"', "”": '"', "–": "-", "—": "-", "−": "-"})
_REGION_TAG = re.compile(r"\bregions?\s*\[\s*\d+\s*\]|\bregions?\s+\d+\b|(?<![\w\]])\[\s*\d+\s*\]")
_CLOCK_TIME = re.compile(r"\b\d{1,2}\s*(?::\d{2}\s*)?o\s*'?\s*clock|\b\d{1,2}:\d{2}\b|\b[a-z]+\s+o\s*'?\s*clock")
_REFUSAL = re.compile(
    r"\b(?:can\s*not|cannot|can't|unable to|not able to|impossible to|no way to|not possible to|"
    r"(?:hard|difficult) to (?:tell|say|determine|estimate|know)|(?:do not|don't) know|not sure|"
    r"not enough information|insufficient information|sorry)\b"
)


def _normalize(text: str) -> str:
    return " ".join(str(text).translate(_TRANSLATE).lower().split())


# --- number words ----------------------------------------------------------------------------------------------------
_SMALL = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"),
    *("thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"),
]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
WORD_VALUES: dict[str, int] = {
    **{word: value for value, word in enumerate(_SMALL)},
    **{word: 20 + 10 * i for i, word in enumerate(_TENS)},
}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUM_WORD = r"(?:" + "|".join(sorted([*WORD_VALUES, *_SCALES], key=len, reverse=True)) + r")"
_DIGIT_WORD = r"(?:zero|one|two|three|four|five|six|seven|eight|nine)"
# "and" joins number words only after a scale ("one hundred and twenty"), never "two and three" (a range).
_WORD_NUMBER = re.compile(
    rf"\b(?P<words>{_NUM_WORD}(?:(?:[\s-]+|(?:(?<=hundred)|(?<=thousand))\s+and\s+){_NUM_WORD})*)\b"
    rf"(?P<point>\s+point(?:\s+{_DIGIT_WORD})+\b)?(?P<half>\s+and\s+an?\s+(?:half|quarter)\b)?"
)
_FULL_UNIT = (
    r"(?:kilomet(?:er|re)s?|centimet(?:er|re)s?|millimet(?:er|re)s?|met(?:er|re)s?|inch(?:es)?|feet|foot|yards?|miles?)"
)
_A_UNIT_AND_HALF = re.compile(rf"\b(?:a|an|one)\s+({_FULL_UNIT})\s+and\s+an?\s+half\b")
_HALF_A_UNIT = re.compile(rf"\b(?:half\s+(?:of\s+)?an?|an?\s+half)\s+({_FULL_UNIT})\b|\bhalf\s+({_FULL_UNIT})\b")
_QUARTER_UNIT = re.compile(rf"\b(?:a\s+)?quarter\s+(?:of\s+)?(?:an?\s+)?({_FULL_UNIT})\b")
_A_UNIT = re.compile(rf"\b(?:a|an)\s+({_FULL_UNIT})\b")
_DIGITS_AND_HALF = re.compile(r"(\d+(?:\.\d+)?)\s+and\s+an?\s+(half|quarter)\b")


def _word_number_value(match: re.Match[str]) -> str:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", match.group("words")):
        if word in WORD_VALUES:
            current += WORD_VALUES[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total, current = total + max(current, 1) * 1000, 0
    value: float = total + current
    if match.group("point"):
        digits = "".join(str(WORD_VALUES[word]) for word in match.group("point").split()[1:])
        value = float(f"{int(value)}.{digits}")
    if match.group("half"):
        value += 0.5 if match.group("half").endswith("half") else 0.25
    return _format(value)


def _format(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def words_to_digits(text: str) -> str:
    """Spelled-out quantities as digits: "one and a half meters" → "1.5 meters", "half a meter" → "0.5 meter",
    "a foot" → "1 foot", "twenty-five" → "25", "two point five" → "2.5". `text` must be normalized (lower case)."""
    text = _A_UNIT_AND_HALF.sub(r"1.5 \1", text)
    text = _WORD_NUMBER.sub(_word_number_value, text)  # before "a half meter": "one and a half meters"
    text = _DIGITS_AND_HALF.sub(lambda m: _format(float(m.group(1)) + (0.5 if m.group(2) == "half" else 0.25)), text)
    text = _HALF_A_UNIT.sub(lambda m: f"0.5 {m.group(1) or m.group(2)}", text)
    text = _QUARTER_UNIT.sub(r"0.25 \1", text)
    return _A_UNIT.sub(r"1 \1", text)


# --- lengths ---------------------------------------------------------------------------------------------------------
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_DIMENSION_AFTER_IN = (
    r"(?=\s*(?:$|[,;:!?)]|\.(?:\s|$)|tall|wide|long|high|deep|thick|away|apart|across|in\s+(?:height|width|length)))"
)
# (pattern, meters per unit, canonical name); longer spellings first inside each pattern.
UNITS: tuple[tuple[str, float, str], ...] = (
    (r"kilomet(?:er|re)s?|kms?(?![a-z])", 1000.0, "km"),
    (r"centimet(?:er|re)s?|cms?(?![a-z])", 0.01, "cm"),
    (r"millimet(?:er|re)s?|mms?(?![a-z])", 0.001, "mm"),
    (r"met(?:er|re)s?|mtrs?(?![a-z])|m(?![a-z'])", 1.0, "m"),
    (rf"inch(?:es)?|in(?![a-z]){_DIMENSION_AFTER_IN}\.?|\"|''", 0.0254, "in"),
    (r"feet|foot|ft(?![a-z])\.?|'(?![a-z'])", 0.3048, "ft"),
    (r"yards?|yds?(?![a-z])", 0.9144, "yd"),
    (r"miles?|mi(?![a-z])", 1609.344, "mi"),
)
_UNIT_GROUPS = "|".join(f"(?P<u{i}>{pattern})" for i, (pattern, _, _) in enumerate(UNITS))
_ANY_UNIT = "|".join(f"(?:{pattern})" for pattern, _, _ in UNITS)
_QUANTITY = re.compile(rf"(?<![\w.])(?P<num>{_NUM})\s*(?:-\s*)?(?:{_UNIT_GROUPS})(?![a-z])")
_RANGE_GAP = re.compile(r"^\s*(?:-|to|or|and)\s*$")
_COMPOUND_GAP = re.compile(r"^\s*(?:,|and)?\s*$")
_COMPOUNDS = {("ft", "in"), ("yd", "ft"), ("yd", "in"), ("m", "cm"), ("m", "mm"), ("km", "m"), ("cm", "mm")}
_NUMBER_BEFORE = re.compile(rf"(?:(?P<between>between)\s+)?(?<![\w.])(?P<num>{_NUM})\s*(?P<sep>-|to|or|and)\s*$")
_BARE_NUMBER = re.compile(rf"(?:\bbetween\s+)?(?<![\w.])({_NUM})(?:\s*(?:-|to|or|and)\s*({_NUM}))?(?![\w%]|\.\d)")


@dataclass(frozen=True)
class Length:
    """A length read from text: `meters`, the unit it was written in (None: unit-less, taken as meters)."""

    meters: float
    unit: str | None
    text: str


@dataclass(frozen=True)
class _Reading:
    start: int
    end: int
    value: float  # in `unit`
    unit: str
    factor: float


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _readings(text: str) -> list[_Reading]:
    readings = []
    for match in _QUANTITY.finditer(text):
        index = next(i for i in range(len(UNITS)) if match.group(f"u{i}") is not None)
        _, factor, unit = UNITS[index]
        readings.append(_Reading(match.start(), match.end(), _number(match.group("num")), unit, factor))
    return readings


def _join_ranges_and_compounds(text: str, readings: list[_Reading]) -> list[_Reading]:
    """ "2 m to 3 m" → one midpoint reading, "5 feet 3 inches" → one reading (in the first unit)."""
    joined: list[_Reading] = []
    for reading in readings:
        if joined:
            last = joined[-1]
            gap = text[last.end : reading.start]
            if (last.unit, reading.unit) in _COMPOUNDS and _COMPOUND_GAP.match(gap):
                total = last.value + reading.value * reading.factor / last.factor
                joined[-1] = _Reading(last.start, reading.end, total, last.unit, last.factor)
                continue
            if _RANGE_GAP.match(gap) and ("and" not in gap or text[: last.start].endswith("between ")):
                middle = (last.value * last.factor + reading.value * reading.factor) / 2 / reading.factor
                joined[-1] = _Reading(last.start, reading.end, middle, reading.unit, reading.factor)
                continue
        # A unit-less number just before: "2-3 meters", "2 to 3 m", "between 2 and 3 meters".
        before = _NUMBER_BEFORE.search(text[: reading.start])
        if before and (before.group("sep") != "and" or before.group("between")):
            middle = (_number(before.group("num")) + reading.value) / 2
            reading = _Reading(before.start(), reading.end, middle, reading.unit, reading.factor)
        joined.append(reading)
    return joined


def _strip_non_lengths(text: str) -> str:
    """Region tags and clock times blanked out (same length, so positions stay put)."""
    for pattern in (_REGION_TAG, _CLOCK_TIME):
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return text


def parse_length(text: str) -> Length | None:
    """The first length in `text` (see the module docstring), or None."""
    plain = _strip_non_lengths(_normalize(text))
    spelled = words_to_digits(plain)
    readings = _join_ranges_and_compounds(spelled, _readings(spelled))
    if readings:
        first = readings[0]
        return Length(first.value * first.factor, first.unit, spelled[first.start : first.end].strip())
    if _REFUSAL.search(plain):
        return None
    # Unit-less fallback: digits only (a spelled "one" is usually a pronoun), a range counts as its midpoint.
    match = _BARE_NUMBER.search(plain)
    if match is None:
        return None
    low = _number(match.group(1))
    high = _number(match.group(2)) if match.group(2) else low
    if match.group(2) and " and " in match.group(0) and not match.group(0).startswith("between"):
        high = low
    return Length((low + high) / 2, None, match.group(0).strip())


def extract_length_m(text: str) -> float | None:
    """The first length in `text`, in meters (see `parse_length`); None for no length or a refusal."""
    length = parse_length(text)
    return None if length is None else length.meters


# --- clock directions ------------------------------------------------------------------------------------------------
_HOUR_WORDS = {word: WORD_VALUES[word] for word in _SMALL[1:13]}
_HOUR = r"(?:\d{1,2}|" + "|".join(sorted(_HOUR_WORDS, key=len, reverse=True)) + r")"
_CLOCK_PATTERNS = (
    re.compile(rf"\b(?P<hour>{_HOUR})\s*(?::(?P<minute>\d{{2}})\s*)?o\s*'?\s*clock"),
    re.compile(r"\b(?P<hour>\d{1,2}):(?P<minute>\d{2})\b"),
    re.compile(
        rf"\b(?:at|around|about|toward|towards|near)\s+(?:the\s+|roughly\s+|approximately\s+|about\s+|around\s+)*"
        rf"(?P<hour>{_HOUR})\b(?!\s*(?:[.,]\d|%|-|:|(?:{_ANY_UNIT})(?![a-z])))"
    ),
)


def extract_clock(text: str) -> int | None:
    """The first clock direction in `text` as an hour 1..12 ("at 10 o'clock", "ten o'clock", "10:00", "at 3");
    minutes round to the nearest hour (10:30 → 11); a 24-hour time folds (15:00 → 3); None when there is none."""
    plain = _REGION_TAG.sub(lambda m: " " * len(m.group(0)), _normalize(text))
    found: list[tuple[int, int]] = []
    for pattern in _CLOCK_PATTERNS:
        match = pattern.search(plain)
        if match is None:
            continue
        word = match.group("hour")
        hour = int(word) if word.isdigit() else _HOUR_WORDS[word]
        minute = int(match.groupdict().get("minute") or 0)
        if hour > 23 or minute > 59 or (pattern is not _CLOCK_PATTERNS[1] and not 1 <= hour <= 12):
            continue
        hour = (hour + (1 if minute >= 30 else 0) - 1) % 12 + 1
        found.append((match.start(), hour))
    return min(found)[1] if found else None


def clock_distance(a: int, b: int) -> int:
    """Hours between two clock directions on the 12-hour circle (12 and 1 are 1 apart; at most 6)."""
    difference = abs(int(a) - int(b)) % 12
    return min(difference, 12 - difference)


# --- yes / no --------------------------------------------------------------------------------------------------------
_YES = r"yes|yeah|yep|indeed|correct|true|affirmative|certainly|absolutely|definitely"
_NO = r"no|nope|not|incorrect|false|wrong|negative"
_LEAD = re.compile(
    rf"^(?:that(?:'s| is)\s+|it(?:'s| is)\s+|this is\s+)?(?P<yes>{_YES})\b|"
    rf"^(?:that(?:'s| is)\s+|it(?:'s| is)\s+|this is\s+)?(?P<no>{_NO})\b|^(?P<contra>in fact|actually)\b"
)
_ANSWER_WORD = re.compile(r"(?:^|[.!?;:,]\s*|\b(?:and|or)\s+)(?P<word>yes|no)(?=\s*(?:[.!?;:,]|$))")


def extract_yes_no(text: str) -> bool | None:
    """True / False for an answer that starts with yes or no ("Yes, ...", "Indeed, ...", "Correct, ...", "That is
    True.", "No, it is not.", "Incorrect, ...", "Not at all"), or says a bare "yes"/"no" later ("Based on the picture,
    yes."). The bench writes some negative answers as "In fact, ..." / "Actually, ..." (a correction): False.
    None when the text says both, neither, or refuses."""
    plain = _normalize(text).lstrip(" \t\"'*`_>#-")
    lead = _LEAD.match(plain)
    words = {match.group("word") for match in _ANSWER_WORD.finditer(plain)}
    if len(words) > 1:
        return None
    if lead is not None and lead.group("contra"):
        rest = plain[lead.end() :].lstrip(" ,")
        following = _LEAD.match(rest)
        if following is not None and not following.group("contra"):
            return following.group("yes") is not None
        return False
    if lead is not None:
        answer = lead.group("yes") is not None
        return None if words and words != {"yes" if answer else "no"} else answer
    if words:
        return words == {"yes"}
    return None


# --- region choice ---------------------------------------------------------------------------------------------------
_MENTION = r"(?:regions?\s*\[\s*\d+\s*\]|regions?\s+\d+\b|(?<![\w\]])\[\s*\d+\s*\])"
_MENTION_INDEX = re.compile(r"\d+")
_ECHO = re.compile(
    rf"^\s*(?:between|of|comparing|among|from)\s+(?:the\s+)?{_MENTION}(?:\s*,\s*{_MENTION})*\s*,?\s*(?:and|or)\s+{_MENTION}\s*,?"
)
_OBJECT_OF_COMPARISON = re.compile(
    rf"\b(?:than|compared (?:to|with)|relative to|versus|vs\.?|as)\s+(?:that of\s+|the one in\s+)?{_MENTION}"
)
_NEGATED = re.compile(r"\b(?:not|isn't|aren't|doesn't|never)\b")


def _mentions(text: str, num_regions: int | None, aliases: Mapping[str, int] | None) -> list[tuple[int, int, int]]:
    """(start, end, region) of each region named in `text` (tags first; colour/name aliases when no tag)."""
    found = [
        (m.start(), m.end(), int(_MENTION_INDEX.search(m.group(0)).group(0)))  # type: ignore[union-attr]
        for m in re.finditer(_MENTION, text)
    ]
    if not found and aliases:
        for name, region in aliases.items():
            found += [(m.start(), m.end(), region) for m in re.finditer(rf"\b{re.escape(name.lower())}\b", text)]
        found.sort()
    return [mention for mention in found if num_regions is None or 0 <= mention[2] < num_regions]


def extract_region_choice(
    text: str, num_regions: int | None = None, aliases: Mapping[str, int] | None = None
) -> int | None:
    """The region an answer chooses ("Region [1] is taller.", "Positioned higher is Region [0].", "Region [0] is
    taller than Region [1]." → 0, "Between Region [0] and Region [1], Region [1] is taller." → 1, "Region [0] is not
    as tall as Region [1]." → 1 with two regions), or None (no region named, "Region [0] and Region [1] are equal").

    `aliases` maps other names to regions (e.g. the colours of the drawn boxes, {"red": 0, "green": 1}); they count
    only when the answer names no region tag. Regions >= `num_regions` are ignored.
    """
    plain = _normalize(text)
    plain = _ECHO.sub(lambda m: " " * len(m.group(0)), plain)
    plain = _OBJECT_OF_COMPARISON.sub(lambda m: " " * len(m.group(0)), plain)
    mentions = _mentions(plain, num_regions, aliases)
    if not mentions:
        return None
    _, end, region = mentions[0]
    if (
        len(mentions) > 1
        and mentions[1][2] != region
        and re.fullmatch(r"\s*,?\s*(?:and|or|&)\s*", plain[end : mentions[1][0]])
    ):
        return None  # "Region [0] and Region [1] ..." names both
    if _NEGATED.search(re.split(r"[.,;:!?]", plain[end:])[0]):  # "Region [0] is not as tall as Region [1]"
        others = [r for r in range(num_regions or 0) if r != region]
        return others[0] if len(others) == 1 else None
    return region


__all__ = [
    "UNITS",
    "WORD_VALUES",
    "Length",
    "clock_distance",
    "extract_clock",
    "extract_length_m",
    "extract_region_choice",
    "extract_yes_no",
    "parse_length",
    "words_to_digits",
]
