"""Spatial-RGPT region references: `<mask>` placeholders → "Region [i]" text, and numbered boxes drawn on a picture.

OpenSpatialDataset (Spatial-RGPT) conversations point at objects with `<mask>` placeholders (often `<mask> <depth>`,
the mask and depth tokens of Spatial-RGPT's region encoder). TheWorld has no region encoder, so each placeholder
becomes plain text, "Region [i]", the name the answers already use ("Region [0] is further away than Region [1].").

[Contract] the i-th `<mask>` of the WHOLE conversation (counting across turns, in order) is "Region [i]" and refers
to `bboxes[i]` (`[x1, y1, x2, y2]` in the pixels of the annotated picture). An object mentioned twice has two
placeholders and therefore two (equal) boxes. More placeholders than boxes, or a box that is not 4 finite numbers,
is a bad record (`BadRecord(BAD_FIELD, ...)`); boxes after the last placeholder are simply not referenced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from theworld.data.skips import BAD_FIELD, BadRecord

MASK_TOKEN = "<mask>"
DEPTH_TOKEN = "<depth>"

# Distinct, saturated colours (cycled when a picture has more regions than colours).
REGION_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
    (0, 128, 128),
    (170, 110, 40),
    (255, 225, 25),
)

_SPACES = re.compile(r"[ \t]+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +([,.;:?!])")
_SPACES_AROUND_NEWLINE = re.compile(r" *\n *")


def count_masks(conversations: Sequence[Mapping[str, Any]]) -> int:
    """The number of `<mask>` placeholders in all turns (non-string values count as none)."""
    return sum(turn["value"].count(MASK_TOKEN) for turn in conversations if isinstance(turn.get("value"), str))


def check_boxes(bboxes: Any, needed: int, where: str = "bbox") -> list[list[float]]:
    """`bboxes` as a list of `[x1, y1, x2, y2]` float lists, at least `needed` of them; `BadRecord` otherwise."""
    if not isinstance(bboxes, Sequence) or isinstance(bboxes, str):
        raise BadRecord(BAD_FIELD, f"field '{where}' must be a list of [x1, y1, x2, y2] boxes")
    boxes: list[list[float]] = []
    for number, box in enumerate(bboxes):
        if (
            not isinstance(box, Sequence)
            or isinstance(box, str)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            raise BadRecord(BAD_FIELD, f"field '{where}[{number}]' must be 4 numbers [x1, y1, x2, y2], got {box!r:.80}")
        boxes.append([float(v) for v in box])
    if needed > len(boxes):
        raise BadRecord(
            BAD_FIELD, f"field '{where}' has {len(boxes)} box(es) but the conversation has {needed} {MASK_TOKEN}(s)"
        )
    return boxes


def _tidy(text: str) -> str:
    """Collapse the spaces that removed tokens leave behind ("Region [0]  ?" → "Region [0]?")."""
    text = _SPACES.sub(" ", text)
    text = _SPACES_AROUND_NEWLINE.sub("\n", text)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text).strip()


def masks_to_regions(
    conversations: Sequence[Mapping[str, Any]], bboxes: Any
) -> tuple[list[dict[str, Any]], list[list[float]]]:
    """Replace the i-th `<mask>` with "Region [i]" and drop `<depth>` (see the module docstring).

    Returns the rewritten turns (other keys kept, `value` replaced) and the boxes referenced by the placeholders
    (`bboxes[:number of <mask>s]`); raises `BadRecord(BAD_FIELD, ...)` for a mismatch.
    """
    boxes = check_boxes(bboxes, count_masks(conversations))
    counter = 0

    def region(_: re.Match[str]) -> str:
        nonlocal counter
        counter += 1
        return f"Region [{counter - 1}]"

    rewritten: list[dict[str, Any]] = []
    for turn in conversations:
        value = turn.get("value")
        if isinstance(value, str):
            value = _tidy(re.sub(re.escape(MASK_TOKEN), region, value).replace(DEPTH_TOKEN, " "))
        rewritten.append({**turn, "value": value})
    return rewritten, boxes[:counter]


def scale_boxes(
    bboxes: Sequence[Sequence[float]], source_size: tuple[int, int], target_size: tuple[int, int]
) -> list[list[float]]:
    """Boxes in the pixels of a `source_size` (width, height) picture → the same boxes on a `target_size` one."""
    sx, sy = target_size[0] / source_size[0], target_size[1] / source_size[1]
    return [[box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy] for box in bboxes]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_bboxes(
    image: Image.Image, bboxes: Sequence[Sequence[float]], labels: Sequence[str] | None = None
) -> Image.Image:
    """A copy of `image` with each box outlined in its own colour and numbered; `image` itself is not changed.

    `labels[i]` (default "Region [i]") is written in the top-left corner INSIDE box i — shortened to its "[i]" part,
    or left out, when it does not fit — so every changed pixel lies within a box. Boxes are clipped to the picture;
    the line width grows with the picture (1 px below 450 px, then about 1/300 of the shorter side).
    """
    canvas = image.convert("RGB") if image.mode != "RGB" else image.copy()
    width, height = canvas.size
    line = max(1, round(min(width, height) / 300))
    font = _font(max(8, round(min(width, height) / 40)))
    draw = ImageDraw.Draw(canvas)
    for number, box in enumerate(bboxes):
        x1, y1, x2, y2 = (float(v) for v in box)
        left, right = sorted((x1, x2))
        top, bottom = sorted((y1, y2))
        left, top = max(0, round(left)), max(0, round(top))
        right, bottom = min(width - 1, round(right)), min(height - 1, round(bottom))
        if right < left or bottom < top:
            continue  # entirely outside the picture
        color = REGION_COLORS[number % len(REGION_COLORS)]
        draw.rectangle((left, top, right, bottom), outline=color, width=line)
        label = labels[number] if labels is not None and number < len(labels) else f"Region [{number}]"
        bracket = label[label.find("[") :] if "[" in label else label
        for text in (label, bracket):
            text_left, text_top, text_right, text_bottom = draw.textbbox((0, 0), text, font=font)
            text_width, text_height = text_right - text_left + 2, text_bottom - text_top + 2
            if text_width <= right - left - 2 * line and text_height <= bottom - top - 2 * line:
                x, y = left + line, top + line
                draw.rectangle((x, y, x + text_width - 1, y + text_height - 1), fill=color)
                draw.text((x + 1 - text_left, y + 1 - text_top), text, fill=(255, 255, 255), font=font)
                break
    return canvas
