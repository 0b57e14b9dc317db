"""Golden strings for the answer extractors of the SpatialRGPT-Bench judge (`theworld.evaluation.quantities`)."""

from __future__ import annotations

import pytest

from theworld.evaluation.quantities import (
    clock_distance,
    extract_clock,
    extract_length_m,
    extract_region_choice,
    extract_yes_no,
    parse_length,
    words_to_digits,
)

FT, IN = 0.3048, 0.0254

LENGTHS: list[tuple[str, float | None]] = [
    # the bench's own answers
    ("It is 2.3 meters.", 2.3),
    ("6.91 feet", 6.91 * FT),
    ("The width of Region [0] is 1.2 meters.", 1.2),
    ("Region [0] is 77.56 centimeters wide.", 0.7756),
    ("The height of Region [1] is 10.0 inches.", 10 * IN),
    ("Vertically, They are 35.43 inches apart.", 35.43 * IN),
    ("A distance of 12 yards exists between Region [0] and Region [1].", 12 * 0.9144),
    # units and spellings
    ("Region [0] is 3 m away", 3.0),
    ("It is 7mm thick", 0.007),
    ("about 2 km", 2000.0),
    ("It measures 4 metres across", 4.0),
    ("3 ft", 3 * FT),
    ("roughly 1 foot", FT),
    ("The height is 30 in.", 30 * IN),
    ("It is 30 in tall", 30 * IN),
    ('a 12" ruler', 12 * IN),
    ("1,200 mm", 1.2),
    (".5 m", 0.5),
    ("A 2-meter-tall tree", 2.0),
    # compound lengths
    ("5 feet 3 inches", 5 * FT + 3 * IN),
    ("5'3\"", 5 * FT + 3 * IN),
    ("6 ft and 2 in", 6 * FT + 2 * IN),
    ("1 meter 20 centimeters", 1.2),
    # number words
    ("two meters", 2.0),
    ("one and a half meters", 1.5),
    ("a meter", 1.0),
    ("a meter and a half", 1.5),
    ("half a meter", 0.5),
    ("twenty-five centimeters", 0.25),
    ("two point five meters", 2.5),
    ("one hundred and twenty centimeters", 1.2),
    ("3 and a half feet", 3.5 * FT),
    # ranges → midpoint
    ("2-3 meters", 2.5),
    ("between 2 and 3 meters", 2.5),
    ("2 to 3 m", 2.5),
    ("2 meters to 3 meters", 2.5),
    ("1.5-2 m", 1.75),
    ("3 or 4 feet", 3.5 * FT),
    ("between 50 cm and 1 m", 0.75),
    # region tags and clock times never give the number
    ("Region [0] and Region [1] are 4 meters apart.", 4.0),
    ("Region [0] is far from Region [1].", None),
    ("[1] is the closest", None),
    ("Region 2 is 1.5m tall", 1.5),
    ("At 10 o'clock, 3 meters away", 3.0),
    ("at 9:30", None),
    # the first length wins; unit-less numbers only without any unit-bearing one
    ("Region [0] is 2 meters and Region [1] is 3 meters", 2.0),
    ("It is 2 (Region [0]) or 3 feet", 3 * FT),
    ("2.5", 2.5),
    ("It is 30 in the picture", 30.0),
    ("roughly 2-3", 2.5),
    ("about 50% of it", None),
    # refusals
    ("I cannot determine the distance.", None),
    ("I can't tell from 1 image", None),
    ("It is hard to tell how far apart they are vertically.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "meters"), LENGTHS)
def test_extract_length_m(text: str, meters: float | None) -> None:
    value = extract_length_m(text)
    if meters is None:
        assert value is None
    else:
        assert value == pytest.approx(meters, rel=1e-9)


def test_parse_length_reports_the_unit_or_its_absence() -> None:
    assert parse_length("6.91 feet") is not None and parse_length("6.91 feet").unit == "ft"  # type: ignore[union-attr]
    bare = parse_length("It is 2.")
    assert bare is not None and bare.unit is None and bare.meters == 2.0


def test_words_to_digits_keeps_other_words() -> None:
    assert words_to_digits("region zero is twenty-five centimeters wide") == "region 0 is 25 centimeters wide"


CLOCKS: list[tuple[str, int | None]] = [
    ("at 10 o'clock", 10),
    ("ten o'clock", 10),
    ("It's at twelve o'clock", 12),
    ("10:00", 10),
    ("at 9:00 position", 9),
    ("10:30", 11),
    ("15:00", 3),
    ("Region [0] will find Region [1] around the 10 o'clock direction.", 10),
    ("Region [1] is roughly at 3 o'clock from Region [0].", 3),
    ("around the 11 o’clock direction", 11),
    ("at 3", 3),
    ("towards two", 2),
    ("Region [12] is at 1 o'clock", 1),
    ("12 o'clock", 12),
    ("13 o'clock", None),
    ("at 3 meters", None),
    ("no idea", None),
]


@pytest.mark.parametrize(("text", "hour"), CLOCKS)
def test_extract_clock(text: str, hour: int | None) -> None:
    assert extract_clock(text) == hour


@pytest.mark.parametrize(("a", "b", "hours"), [(12, 1, 1), (1, 12, 1), (11, 1, 2), (3, 9, 6), (10, 10, 0), (12, 6, 6)])
def test_clock_distance_wraps_around_twelve(a: int, b: int, hours: int) -> None:
    assert clock_distance(a, b) == hours


YES_NO: list[tuple[str, bool | None]] = [
    ("Yes, Region [0] is behind Region [1].", True),
    ("Yes.", True),
    ("Indeed, Region [0] is positioned over Region [1].", True),
    ("Correct, you'll find Region [0] to the left of Region [1].", True),
    ("That is True.", True),
    ("**Yes**, it is.", True),
    ("Based on the image, yes.", True),
    ("Actually, yes.", True),
    ("No.", False),
    ("No, it is not.", False),
    ("Nope", False),
    ("Not at all.", False),
    ("Incorrect, Region [0] is not smaller in size than Region [1].", False),
    ("That is False.", False),
    ("In fact, Region [0] is to the right of Region [1].", False),
    ("Actually, Region [0] is below Region [1].", False),
    ("Yes and no.", None),
    ("Yes. No.", None),
    ("Region [0] is behind Region [1].", None),
    ("I cannot tell.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "answer"), YES_NO)
def test_extract_yes_no(text: str, answer: bool | None) -> None:
    assert extract_yes_no(text) is answer


CHOICES: list[tuple[str, int | None]] = [
    ("Region [1] is taller.", 1),
    ("Positioned higher is Region [0].", 0),
    ("Standing taller between the two is Region [1].", 1),
    ("From the viewer's perspective, Region [1] appears more on the left side.", 1),
    ("Region [0] is taller than Region [1].", 0),
    ("Region [1] is higher compared to Region [0].", 1),
    ("Between Region [0] and Region [1], Region [1] is taller.", 1),
    ("Region [0] is not as tall as Region [1].", 1),
    ("Region [0] is taller, not Region [1].", 0),
    ("region 1", 1),
    ("Region [0] and Region [1] are the same height.", None),
    ("Region [3] is taller", None),
    ("The one on the left.", None),
]


@pytest.mark.parametrize(("text", "region"), CHOICES)
def test_extract_region_choice(text: str, region: int | None) -> None:
    assert extract_region_choice(text, num_regions=2) == region


def test_region_aliases_count_only_without_region_tags() -> None:
    aliases = {"red": 0, "green": 1}
    assert extract_region_choice("The green box is taller.", 2, aliases) == 1
    assert extract_region_choice("Region [0], the green one.", 2, aliases) == 0
    assert extract_region_choice("The green box is taller.", 2) is None
