"""`TheWorldProcessor`: Gemma 3's processor plus world placeholders and world pixels.

For every image it expands `<start_of_world>` + N x `<world_soft_token>` + `<end_of_world>` right before Gemma's own
`<start_of_image>` block (world first, then SigLIP), and returns `world_pixel_values` [num_images, 3, S, S] in
[-1, 1] beside Gemma's `pixel_values`. World placeholders get token type 1, so Gemma 3 lets them attend to each other
bidirectionally, as image tokens do. With `num_world_tokens=0` it behaves exactly like `Gemma3Processor`.

N is `num_world_tokens` (= `config.num_world_tokens()`, for the checkpoint's `num_world_steps`). A call may predict
another number of future frames: `processor(..., num_world_steps=4)` inserts `config.num_world_tokens(4)` =
(1 + 4 // 4) x `world_tokens_per_frame` placeholders per image; pass the same `num_world_steps` to the model's
`forward` / `generate` (a mismatch is a one-line `ValueError` there). `with processor.using_world_steps(4): ...`
sets it for every call in the block (e.g. calls made by helpers that do not forward the keyword).
`world_tokens_per_frame` is `config.tokens_per_world_frame()`: h*w latent positions ("spatial"), (h/k)*(w/k)
averaged k x k blocks ("pooled"), or 16 latent channels ("channel").
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Generator
from typing import Any

import torch
from transformers import BatchFeature, Gemma3Processor

from theworld.constants import EOW_TOKEN, SOW_TOKEN, VAE_TEMPORAL_FACTOR, WORLD_TOKEN
from theworld.data.image_inputs import load_images, normalize_nested_images, world_pixels

# The world placeholder sequence of the call in progress (a ContextVar, so concurrent calls in threads don't mix).
_CALL_SEQUENCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("theworld_world_sequence", default=None)
# (id of the processor, steps) set by `using_world_steps`: only that processor's calls in the block use it.
_BLOCK_STEPS: contextvars.ContextVar[tuple[int, int | None] | None] = contextvars.ContextVar(
    "theworld_world_steps", default=None
)


class TheWorldProcessor(Gemma3Processor):
    def __init__(
        self,
        image_processor: Any,
        tokenizer: Any,
        chat_template: str | None = None,
        image_seq_length: int = 256,
        num_world_tokens: int = 0,
        world_image_size: int = 256,
        world_tokens_per_frame: int | None = None,
        num_world_steps: int = 0,
        max_world_steps: int = 16,
        **kwargs: Any,
    ) -> None:
        self.num_world_tokens = int(num_world_tokens)
        self.world_image_size = int(world_image_size)
        # Per-call steps need the tokens of one latent frame; a processor saved before they existed has None.
        self.world_tokens_per_frame = None if world_tokens_per_frame is None else int(world_tokens_per_frame)
        self.num_world_steps = int(num_world_steps)
        self.max_world_steps = int(max_world_steps)
        self.world_token_id: int | None = None
        self.world_sequence = ""
        if self.num_world_tokens > 0:
            ids = [tokenizer.convert_tokens_to_ids(token) for token in (SOW_TOKEN, EOW_TOKEN, WORLD_TOKEN)]
            if any(i is None or i == tokenizer.unk_token_id for i in ids):
                raise ValueError(
                    f"tokenizer: missing {SOW_TOKEN}/{EOW_TOKEN}/{WORLD_TOKEN}; add them with "
                    "theworld.modeling.tokens.add_world_tokens (TheWorld.from_pretrained does this)"
                )
            self.world_token_id = int(ids[2])
            self.world_sequence = self._sequence(self.num_world_tokens)
        super().__init__(image_processor, tokenizer, chat_template=chat_template, image_seq_length=image_seq_length)

    @staticmethod
    def _sequence(num_tokens: int) -> str:
        return SOW_TOKEN + WORLD_TOKEN * num_tokens + EOW_TOKEN

    def world_tokens_for_steps(self, num_world_steps: int | None = None) -> int:
        """World placeholders per image for a call predicting `num_world_steps` future frames (None: the default).

        [Contract] equals `TheWorldConfig.num_world_tokens(num_world_steps)` of the model this processor was built for.
        """
        if num_world_steps is None or self.num_world_tokens == 0:
            return self.num_world_tokens
        from theworld.modeling.rollout import validate_world_steps

        steps = validate_world_steps(num_world_steps, self.max_world_steps)
        if steps == self.num_world_steps:
            return self.num_world_tokens
        if not self.world_tokens_per_frame:
            raise ValueError(
                f"num_world_steps={steps}: this processor was saved without world_tokens_per_frame; reload it with "
                "TheWorld.from_pretrained (it rebuilds the processor from the model config)"
            )
        return (1 + steps // VAE_TEMPORAL_FACTOR) * self.world_tokens_per_frame

    @contextlib.contextmanager
    def using_world_steps(self, num_world_steps: int | None) -> Generator[None, None, None]:
        """Every call in the block uses `num_world_steps` unless it passes its own (None: the default)."""
        self.world_tokens_for_steps(num_world_steps)  # validate now, in one line, not at the first call
        token = _BLOCK_STEPS.set((id(self), num_world_steps))
        try:
            yield
        finally:
            _BLOCK_STEPS.reset(token)

    def replace_image_token(self, image_inputs: dict[str, Any], image_idx: int, **kwargs: Any) -> str:
        sequence = _CALL_SEQUENCE.get()
        sequence = self.world_sequence if sequence is None else sequence
        return sequence + super().replace_image_token(image_inputs, image_idx, **kwargs)

    @property
    def image_token_ids(self) -> list[int]:
        ids = [int(self.tokenizer.image_token_id)]
        if self.world_token_id is not None:
            ids.append(self.world_token_id)
        return ids

    def __call__(
        self, images: Any = None, text: Any = None, num_world_steps: int | None = None, **kwargs: Any
    ) -> BatchFeature:
        """Gemma 3's processing plus world placeholders and `world_pixel_values`.

        num_world_steps: future frames the model will predict for this call (default: the checkpoint's); sets how
        many world placeholders each image gets. Give the model the same value.
        """
        block = _BLOCK_STEPS.get()
        if num_world_steps is None and block is not None and block[0] == id(self):
            num_world_steps = block[1]
        sequence = None
        if num_world_steps is not None and self.num_world_tokens > 0:
            sequence = self._sequence(self.world_tokens_for_steps(num_world_steps))
        if images is not None:
            images = normalize_nested_images(images)
        token = _CALL_SEQUENCE.set(sequence)
        try:
            outputs = super().__call__(images=images, text=text, **kwargs)
        finally:
            _CALL_SEQUENCE.reset(token)
        if images is not None and self.num_world_tokens > 0:
            outputs["world_pixel_values"] = self.world_pixels(images)
        return outputs

    def world_pixels(self, images: Any) -> torch.Tensor:
        """Any picture(s) → [N, 3, S, S] in [-1, 1] for `TheWorld.encode_world`."""
        return world_pixels(load_images(images), self.world_image_size)
