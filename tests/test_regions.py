"""`theworld.data.regions`: the `<mask>` → "Region [i]" → `bbox[i]` mapping and the numbered-box overlay."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from PIL import Image

from theworld.data.regions import REGION_COLORS, draw_bboxes, masks_to_regions
from theworld.data.skips import BAD_FIELD, BadRecord
from theworld.testing.openspatial_fixtures import iter_openspatial_records, make_image_ids
from theworld.testing.pictures import make_picture

REGION = re.compile(r"Region \[(\d+)\]")

# A real-format conversation: the first object is asked about again in the second turn (a repeated box).
CONVERSATION = [
    {"from": "human", "value": "<image>\nIs <mask> <depth> further away than <mask> <depth>?"},
    {"from": "gpt", "value": "Region [0] is further away than Region [1]."},
    {"from": "human", "value": "How wide is <mask>  <depth> ?"},
    {"from": "gpt", "value": "Region [2] is 1.25 meters wide."},
    {"from": "human", "value": "Which is taller, <mask> or <mask> <depth>?"},
    {"from": "gpt", "value": "Region [4] is taller."},
]
BOXES = [[10.0, 20.0, 110.5, 220.0], [300, 40, 400, 90], [10.0, 20.0, 110.5, 220.0], [5, 5, 50, 50], [60, 60, 90, 99]]


def test_masks_become_global_regions_across_turns() -> None:
    turns, boxes = masks_to_regions(CONVERSATION, BOXES)
    assert [turn["from"] for turn in turns] == [turn["from"] for turn in CONVERSATION]
    assert turns[0]["value"] == "<image>\nIs Region [0] further away than Region [1]?"
    assert turns[2]["value"] == "How wide is Region [2]?"  # <depth> removed, the spaces it left tidied
    assert turns[4]["value"] == "Which is taller, Region [3] or Region [4]?"
    assert [turn["value"] for turn in turns[1::2]] == [turn["value"] for turn in CONVERSATION[1::2]]
    assert boxes == [[float(v) for v in box] for box in BOXES]
    assert boxes[0] == boxes[2]  # the repeated object keeps one box per mention
    assert CONVERSATION[0]["value"].startswith("<image>\nIs <mask>")  # the input is not modified


def test_generated_records_map_each_region_to_its_box() -> None:
    """On real-format records: human turns name Region 0, 1, ... in order, one per box; answers use those numbers."""
    for record in iter_openspatial_records(200, make_image_ids(150), seed=3):
        turns, boxes = masks_to_regions(record["conversations"], record["bbox"])
        asked = [int(n) for turn in turns[0::2] for n in REGION.findall(turn["value"])]
        assert asked == list(range(len(record["bbox"])))
        assert boxes == record["bbox"]
        for turn in turns:
            assert "<mask>" not in turn["value"] and "<depth>" not in turn["value"] and "  " not in turn["value"]
        for question, answer in zip(turns[0::2], turns[1::2], strict=True):
            named = {int(n) for n in REGION.findall(question["value"])}
            assert {int(n) for n in REGION.findall(answer["value"])} <= named


def test_unreferenced_boxes_are_dropped() -> None:
    turns, boxes = masks_to_regions(CONVERSATION[:2], BOXES)
    assert boxes == [BOXES[0], [300.0, 40.0, 400.0, 90.0]] and "Region [1]" in turns[0]["value"]


@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        (BOXES[:4], r"field 'bbox' has 4 box\(es\) but the conversation has 5 <mask>\(s\)"),
        ([*BOXES[:4], [1, 2, 3]], r"field 'bbox\[4\]' must be 4 numbers"),
        ([*BOXES[:4], [1, 2, "3", 4]], r"field 'bbox\[4\]' must be 4 numbers"),
        ([*BOXES[:4], [1, 2, float("nan"), 4]], r"field 'bbox\[4\]' must be 4 numbers"),
        ([*BOXES[:4], [True, 2, 3, 4]], r"field 'bbox\[4\]' must be 4 numbers"),
        ("0 0 1 1", r"field 'bbox' must be a list"),
        (None, r"field 'bbox' must be a list"),
    ],
)
def test_mismatch_and_bad_boxes_raise_bad_field(boxes: object, match: str) -> None:
    with pytest.raises(BadRecord, match=match) as error:
        masks_to_regions(CONVERSATION, boxes)
    assert error.value.reason == BAD_FIELD and "\n" not in str(error.value)


def _changed(before: Image.Image, after: Image.Image) -> np.ndarray:
    return np.any(np.asarray(before.convert("RGB"), dtype=np.int16) != np.asarray(after, dtype=np.int16), axis=2)


def _inside(shape: tuple[int, int], boxes: list[list[int]]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for x1, y1, x2, y2 in boxes:
        mask[max(0, y1) : y2 + 1, max(0, x1) : x2 + 1] = True
    return mask


def test_draw_bboxes_changes_only_box_pixels_on_a_copy() -> None:
    picture = make_picture(4, size=256)
    original = picture.tobytes()
    boxes = [[20, 30, 120, 140], [140, 150, 240, 250], [200, 5, 400, 60]]  # the last one runs off the picture
    drawn = draw_bboxes(picture, boxes, ["Region [0]", "Region [1]", "Region [2]"])
    assert picture.tobytes() == original and drawn is not picture and drawn.size == picture.size
    changed = _changed(picture, drawn)
    assert not changed[~_inside(changed.shape, boxes)].any()  # nothing outside the boxes
    pixels = np.asarray(drawn)
    for number, (x1, y1, x2, y2) in enumerate(boxes[:2]):
        edge = pixels[y2, x1 : x2 + 1]  # the bottom edge: the outline colour all along
        assert (edge == REGION_COLORS[number]).all(axis=1).mean() > 0.5
        centre = (slice(y1 + 25, y2 - 10), slice(x1 + 45, x2 - 10))
        assert not changed[centre].any()  # only the outline and the label in the top-left corner
    assert changed[30:60, 20:60].sum() > 50  # the label of box 0
    assert (pixels[5, 200:256] == REGION_COLORS[2]).all()  # the clipped box's top edge


def test_draw_bboxes_labels_small_boxes_briefly_or_not_at_all() -> None:
    picture = Image.new("RGB", (300, 300), (128, 128, 128))
    boxes = [[10, 10, 45, 40], [100, 100, 106, 106]]
    drawn = draw_bboxes(picture, boxes, ["Region [7]", "Region [8]"])
    changed = _changed(picture, drawn)
    assert not changed[~_inside(changed.shape, boxes)].any()
    assert changed[12:38, 12:43].sum() > 20  # "[7]" fits where "Region [7]" does not
    assert changed[102:105, 102:105].sum() == 0  # no room for any label: the interior is untouched


def test_draw_bboxes_line_width_grows_with_the_picture_and_colours_differ() -> None:
    widths = []
    for side in (150, 1200):
        picture = Image.new("RGB", (side, side), (0, 0, 0))
        drawn = draw_bboxes(picture, [[side // 4, side // 4, side // 2, side // 2]], [""])
        column = np.asarray(drawn)[side // 3, :, 0]
        widths.append(int((column > 0).sum()) // 2)  # two vertical edges cross this row
    assert widths[0] == 1 and widths[1] >= 3
    colours = {tuple(REGION_COLORS[i % len(REGION_COLORS)]) for i in range(len(REGION_COLORS))}
    assert len(colours) == len(REGION_COLORS)


def test_draw_bboxes_converts_and_ignores_boxes_outside() -> None:
    gray = make_picture(1, size=64).convert("L")
    drawn = draw_bboxes(gray, [[100, 100, 200, 200], [-50, -50, -10, -10]], None)
    assert drawn.mode == "RGB" and not _changed(gray, drawn).any() and gray.mode == "L"
    shuffled = [random.Random(0).uniform(0, 64) for _ in range(4)]
    reversed_box = [max(shuffled[:2]), max(shuffled[2:]), min(shuffled[:2]), min(shuffled[2:])]
    assert _changed(gray, draw_bboxes(gray, [reversed_box], None)).any()  # x2 < x1: drawn as the same box
