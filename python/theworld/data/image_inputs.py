"""Turn any picture a user hands us into an 8-bit RGB `PIL.Image`, and RGB pictures into VAE pixels in [-1, 1].

Accepted: a path or `bytes` of an encoded file, a PIL image of any mode (RGB, L, LA, RGBA, P, CMYK, 1, I, I;16, F),
a numpy array (HW or HWC, uint8 or float in [0, 1]), a torch tensor (CHW or BCHW, uint8 or float in [0, 1]).
[Contract] the same picture in any of these forms yields the same RGB image, so SigLIP and the world model see the
same pixels whatever the input type.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


def _from_high_bit(image: Image.Image) -> Image.Image:
    """16/32-bit grayscale → 8-bit L by scaling the full range (PIL's convert("RGB") would clip at 255)."""
    array = np.asarray(image).astype(np.float64)
    max_value = 65535.0 if image.mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(np.round(array / max_value * 255.0), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → 8-bit RGB (16-bit scaled, not clipped; transparency over white; CMYK, palette converted)."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_BIT_MODES:
        return _from_high_bit(image).convert("RGB")
    if image.mode == "F":
        array = np.clip(np.asarray(image), 0.0, 1.0) * 255.0
        return Image.fromarray(np.round(array).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels become white, as most viewers show them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _array_to_pil(array: np.ndarray[Any, Any], what: str) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"{what}: expected an HW or HWC array with 1, 3 or 4 channels, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{what}: expected uint8 or float values in [0, 1], got dtype {array.dtype}")
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    return to_rgb(Image.fromarray(array))


def _open_encoded(data: bytes, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return to_rgb(opened)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{what}: cannot decode the image (expected PNG, JPEG, WebP, ...): {error}") from None


def load_image(image: Any, what: str = "image") -> Image.Image:
    """One picture → 8-bit RGB PIL image. Raises a one-line `ValueError` naming `what` on bad input."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"{what}: no such image file: {path}")
        return _open_encoded(path.read_bytes(), f"{what} {path}")
    if isinstance(image, (bytes, bytearray)):
        return _open_encoded(bytes(image), what)
    if isinstance(image, np.ndarray):
        return _array_to_pil(image, what)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise ValueError(
                f"{what}: expected a CHW tensor (use load_images for BCHW), got shape {tuple(image.shape)}"
            )
        tensor = image.detach().cpu()
        array = tensor.permute(1, 2, 0).numpy() if tensor.shape[0] in (1, 3, 4) else tensor.numpy()
        return _array_to_pil(array, what)
    raise ValueError(
        f"{what}: expected a path, bytes, PIL image, numpy array or torch tensor, got {type(image).__name__}"
    )


def load_images(images: Any, what: str = "images") -> list[Image.Image]:
    """A picture, a BCHW tensor or a (nested) list of pictures → a flat list of RGB PIL images."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return [load_image(img, f"{what}[{i}]") for i, img in enumerate(images)]
    if isinstance(images, (list, tuple)):
        flat: list[Image.Image] = []
        for i, item in enumerate(images):
            flat.extend(load_images(item, f"{what}[{i}]"))
        return flat
    return [load_image(images, what)]


def normalize_nested_images(images: Any) -> Any:
    """Same structure as given (single, list, or list of lists), every picture converted to RGB PIL."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return load_images(images)
    if isinstance(images, (list, tuple)):
        return [normalize_nested_images(item) for item in images]
    return load_image(images)


def world_pixels(images: list[Image.Image], size: int) -> torch.Tensor:
    """RGB pictures → VAE input [N, 3, size, size] in [-1, 1].

    Resizing happens on 8-bit pixels, so bicubic overshoot is clipped by the format itself and the result stays in
    [-1, 1] exactly (a float-tensor bicubic resize would overshoot at sharp edges).
    """
    arrays = [np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) for img in images]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # [N, 3, S, S] in [0, 255]
    return batch / 127.5 - 1.0
