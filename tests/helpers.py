"""Small helpers shared by the tests (inputs built through the real processor and chat template)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from PIL import Image

from theworld.modeling.generation import build_user_messages
from theworld.testing.pictures import make_picture

QUESTION = "Is the red shape left of the blue shape?"


def chat_inputs(processor: Any, images: list[Image.Image] | None, prompts: list[str] | None = None) -> Any:
    """A padded batch rendered with Gemma's chat template (one image per prompt, or text only)."""
    count = len(images) if images is not None else len(prompts or [QUESTION])
    prompts = prompts or [QUESTION if i % 2 == 0 else "What is above the circle?" for i in range(count)]
    texts = [
        processor.apply_chat_template(
            build_user_messages(p, with_image=images is not None), add_generation_prompt=True, tokenize=False
        )
        for p in prompts
    ]
    return processor(
        text=texts,
        images=[[img] for img in images] if images is not None else None,
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )


def pictures(n: int, offset: int = 0) -> list[Image.Image]:
    return [make_picture(seed=offset + i) for i in range(n)]


def labelled_spans(labels: torch.Tensor) -> list[list[int]]:
    """Contiguous runs of labelled (not -100) tokens in one row."""
    spans: list[list[int]] = []
    previous = False
    for value in labels.tolist():
        if value != -100:
            if not previous:
                spans.append([])
            spans[-1].append(value)
        previous = value != -100
    return spans


def one_line_error(error: pytest.ExceptionInfo[BaseException]) -> str:
    """The raised message, asserted to be the one line (no traceback) the project promises for bad input."""
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message
