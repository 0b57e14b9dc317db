"""Batched greedy answers (left padding, 0..N pictures per item) and answer accuracy, shared by training callbacks,
the demo and the benchmark evaluations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from theworld.modeling.generation import build_user_messages

_WORD = re.compile(r"[a-z0-9]+")


def _as_image_list(item: Any) -> list[Any]:
    """One item's pictures: None → [], a picture → [picture], a list/tuple → its non-None entries."""
    if item is None:
        return []
    if isinstance(item, (list, tuple)):
        return [image for image in item if image is not None]
    return [item]


def build_prompt_messages(prompt: str, num_images: int) -> list[dict[str, Any]]:
    """One user turn: `num_images` pictures, then the text (the layout of `build_user_messages`, for 0..N pictures)."""
    if num_images <= 1:
        return build_user_messages(prompt, with_image=num_images == 1)
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


@torch.no_grad()
def generate_answers(
    model: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 8,
    pixel_override: torch.Tensor | None = None,
    generate_kwargs: dict[str, Any] | None = None,
) -> list[str]:
    """Greedy answers for (pictures, prompt) pairs, `batch_size` at a time with left padding.

    `images[i]` is None, one picture, or a list of pictures (BLINK rows have 1-4). Items are grouped by picture count
    (the processor needs the same number of pictures per sample in a batch); answers come back in input order.
    `pixel_override` [3, H, W] replaces every SigLIP picture (world pixels keep the real one): the world-only probe.
    `generate_kwargs` go to `model.generate` (e.g. `num_world_steps`); TheWorld's `generate` itself suppresses its world
    special tokens.
    [Contract] the answer of an item does not depend on the batch it is in (left padding is masked everywhere).
    """
    if len(images) != len(prompts):
        raise ValueError(f"generate_answers: {len(images)} image entries for {len(prompts)} prompts")
    processor = model.processor
    was_training = model.training
    model.eval()
    per_item = [_as_image_list(item) for item in images]
    groups: dict[int, list[int]] = {}
    for index, pictures in enumerate(per_item):
        groups.setdefault(len(pictures), []).append(index)
    answers: list[str] = [""] * len(prompts)
    extra = dict(generate_kwargs or {})
    # The processor must insert as many world placeholders as the rollout of this call yields.
    steps = extra.get("num_world_steps")
    processor_kwargs: dict[str, Any] = {} if steps is None else {"num_world_steps": int(steps)}
    try:
        for count, indices in sorted(groups.items()):
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                texts = [
                    processor.apply_chat_template(
                        build_prompt_messages(prompts[i], count), add_generation_prompt=True, tokenize=False
                    )
                    for i in chunk
                ]
                batch = processor(
                    text=texts,
                    images=[per_item[i] for i in chunk] if count else None,
                    return_tensors="pt",
                    padding=True,
                    padding_side="left",
                    add_special_tokens=False,  # the chat template already renders <bos>
                    **processor_kwargs,
                )
                if pixel_override is not None and "pixel_values" in batch:
                    batch["pixel_values"] = pixel_override.expand_as(batch["pixel_values"]).clone()
                batch = {k: v.to(model.device) for k, v in batch.items()}
                for key in ("pixel_values", "world_pixel_values"):
                    if key in batch:
                        batch[key] = batch[key].to(model.dtype)
                output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, **extra)
                new_tokens = output[:, batch["input_ids"].shape[1] :]
                decoded = processor.batch_decode(new_tokens, skip_special_tokens=True)
                for i, text in zip(chunk, decoded, strict=True):
                    answers[i] = str(text).strip()
    finally:
        model.train(was_training)
    return answers


def normalize_answer(text: str) -> str:
    """Lower-case words only: "Yes." → "yes", "The red square!" → "the red square"."""
    return " ".join(_WORD.findall(text.lower()))


def answer_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Exact match after normalization; a prediction that starts with the reference's words also counts
    (a tiny model often keeps talking after "yes")."""
    if not references:
        return float("nan")
    hits = 0
    for prediction, reference in zip(predictions, references, strict=True):
        pred, ref = normalize_answer(prediction), normalize_answer(reference)
        hits += pred == ref or (bool(ref) and pred.startswith(ref + " "))
    return hits / len(references)
