"""`generate()` two ways: Hugging Face's `model.generate(**inputs)` and `model.generate(image, "question") -> str`.

The convenience form renders Gemma's chat template with the attached processor, so prompts match training exactly.
Both suppress `never_generated_token_ids()` (TheWorld: `<start_of_world>`, `<end_of_world>`, `<world_soft_token>`).
"""

from __future__ import annotations

from typing import Any

import torch


def build_user_messages(prompt: str, with_image: bool) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "image"}] if with_image else []
    content.append({"type": "text", "text": prompt})
    return [{"role": "user", "content": content}]


class ConvenienceGenerationMixin:
    """Mixed into `TheWorld` before `GenerationMixin`: dispatches on a string second argument (or `prompt=`)."""

    def generate(self: Any, inputs: Any = None, generation_config: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(generation_config, str) or "prompt" in kwargs:
            prompt = generation_config if isinstance(generation_config, str) else kwargs.pop("prompt")
            image = kwargs.pop("image", inputs)
            return self.answer(image, prompt, **kwargs)
        if suppressed := self.never_generated_token_ids():
            # Added to whatever `suppress_tokens` the call or its generation config already has.
            configured = kwargs.get("suppress_tokens")
            if configured is None:
                config = generation_config if generation_config is not None else self.generation_config
                configured = getattr(config, "suppress_tokens", None)
            kwargs["suppress_tokens"] = sorted({*(configured or []), *suppressed})
        return super().generate(inputs, generation_config, *args, **kwargs)  # type: ignore[misc]

    def never_generated_token_ids(self) -> list[int]:
        """Token ids `generate` suppresses at every step (none here; TheWorld: its world special tokens)."""
        return []

    @torch.no_grad()
    def answer(self: Any, image: Any, prompt: str, max_new_tokens: int = 32, **generate_kwargs: Any) -> str:
        """Greedy answer to `prompt` about `image` (any picture type, or None for text only)."""
        if self.processor is None:
            raise ValueError("generate(image, prompt): no processor attached; load the model with from_pretrained")
        messages = build_user_messages(prompt, with_image=image is not None)
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        images = [image] if image is not None else None
        # The chat template already renders <bos>: do not let the tokenizer add a second one.
        inputs = self.processor(text=text, images=images, return_tensors="pt", add_special_tokens=False)
        inputs = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        generate_kwargs.setdefault("do_sample", False)
        output = self.generate(**inputs, max_new_tokens=max_new_tokens, **generate_kwargs)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        return str(self.processor.decode(new_tokens, skip_special_tokens=True)).strip()
