"""Open a picture file (or downloaded bytes) of a real dataset defensively: every failure is a `BadImage` with a reason.

Real image folders hold files that are missing (still downloading), truncated (a killed download), not pictures at
all, or enormous. `open_image_file` and `open_image_bytes` decode fully (so a truncated JPEG fails here, not in the
collator), convert every mode (grayscale, CMYK, RGBA, palette, 16-bit) to 8-bit RGB with
`theworld.data.image_inputs`, and bound the size: a JPEG larger than `max_side` is decoded at a reduced scale
(`draft`), anything else is downscaled after decoding, and a picture over `max_pixels` (a decompression bomb to PIL)
is refused.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from theworld.data.image_inputs import to_rgb
from theworld.data.skips import CORRUPT_IMAGE, IMAGE_TOO_LARGE, MISSING_IMAGE, BadRecord

DEFAULT_MAX_SIDE = 2048  # far above what SigLIP (896) and the VAE (256-704) take
DEFAULT_MAX_PIXELS = 16384 * 16384


class BadImage(BadRecord):
    """A picture that cannot be served; `reason` is one of the `theworld.data.skips` image reasons."""


def open_image_file(
    path: str | os.PathLike[str], max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Decode `path` to an RGB picture whose longer side is at most `max_side`; raise `BadImage` otherwise."""
    file = Path(path)
    if not file.is_file():
        raise BadImage(MISSING_IMAGE, f"{file}: no such image file")
    return _decode(file, str(file), max_side, max_pixels)


def open_image_bytes(
    data: bytes, where: str, max_side: int = DEFAULT_MAX_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """`open_image_file` for encoded bytes (a downloaded or embedded picture); `where` names it in errors."""
    return _decode(io.BytesIO(data), where, max_side, max_pixels)


def _decode(source: Path | io.BytesIO, where: str, max_side: int, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                with Image.open(source) as opened:
                    width, height = opened.size
                    if width * height > max_pixels:
                        raise BadImage(IMAGE_TOO_LARGE, f"{where}: {width}x{height} pixels exceed {max_pixels}")
                    if max(width, height) > max_side and opened.format == "JPEG":
                        opened.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale
                    opened.load()
                    image = to_rgb(opened)
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except BadImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise BadImage(IMAGE_TOO_LARGE, f"{where}: {error}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise BadImage(CORRUPT_IMAGE, f"{where}: cannot decode the image: {error}") from None
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return image
