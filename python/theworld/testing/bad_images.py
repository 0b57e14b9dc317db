"""Picture files real image folders contain besides good JPEGs, for the loaders' robustness tests.

`write_image_case(path, case)` writes one case; `GOOD_CASES` decode to RGB (after conversion or downscaling),
`BAD_CASES` must be skipped with the reason in `BAD_CASE_REASONS`.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from theworld.data.skips import CORRUPT_IMAGE, IMAGE_TOO_LARGE
from theworld.testing.pictures import make_picture

GOOD_CASES = ("rgb_jpeg", "grayscale", "cmyk_jpeg", "rgba_png", "palette_png", "gray16_png", "large_jpeg")
BAD_CASES = ("truncated_jpeg", "not_an_image", "empty_file", "bomb_png")
BAD_CASE_REASONS = {
    "truncated_jpeg": CORRUPT_IMAGE,
    "not_an_image": CORRUPT_IMAGE,
    "empty_file": CORRUPT_IMAGE,
    "bomb_png": IMAGE_TOO_LARGE,
}
LARGE_SIDE = 5000  # large_jpeg: a 5000x3000 JPEG, served downscaled


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png_bytes(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG whose header claims `width` x `height` pixels (3.6 G by default) with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def write_image_case(path: str | Path, case: str, seed: int = 0, size: int = 64) -> Path:
    """Write picture `case` (one of GOOD_CASES + BAD_CASES) to `path`; returns the path."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    picture = make_picture(seed, size=size)
    if case == "rgb_jpeg":
        picture.save(file, format="JPEG", quality=90)
    elif case == "grayscale":
        picture.convert("L").save(file, format="JPEG", quality=90)
    elif case == "cmyk_jpeg":
        picture.convert("CMYK").save(file, format="JPEG", quality=90)
    elif case == "rgba_png":
        rgba = picture.convert("RGBA")
        rgba.putalpha(128)
        rgba.save(file, format="PNG")
    elif case == "palette_png":
        picture.convert("P").save(file, format="PNG")
    elif case == "gray16_png":
        array = (np.asarray(picture.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        Image.fromarray(array).save(file, format="PNG")  # uint16 → mode I;16
    elif case == "large_jpeg":
        picture.resize((LARGE_SIDE, LARGE_SIDE * 3 // 5)).save(file, format="JPEG", quality=80)
    elif case == "truncated_jpeg":
        buffer = file.with_suffix(".full")
        picture.save(buffer, format="JPEG", quality=90)
        data = buffer.read_bytes()
        buffer.unlink()
        file.write_bytes(data[: len(data) // 2])
    elif case == "not_an_image":
        file.write_bytes(b"<html><body>404 Not Found</body></html>")
    elif case == "empty_file":
        file.write_bytes(b"")
    elif case == "bomb_png":
        file.write_bytes(bomb_png_bytes())
    else:
        raise ValueError(f"unknown image case {case!r}; expected one of {GOOD_CASES + BAD_CASES}")
    return file
