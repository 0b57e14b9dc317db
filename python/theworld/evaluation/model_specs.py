"""What an evaluation runs: a TheWorld checkpoint, the Gemma-only baseline, and the world-token ablations.

A model spec string is a TheWorld checkpoint (directory or Hub id; a plain Gemma 3 checkpoint is converted with a
random world projection, which is only useful for smoke tests) or `gemma3-baseline`: plain
`Gemma3ForConditionalGeneration` with its own processor, answering the same prompts (`--base-model`, default
google/gemma-3-4b-it). Ablations of a TheWorld model:

- `world_ablation="zero"`: the world projector's output is replaced by zeros (world tokens carry no information but
  the sequence layout, and so the positions of every other token, is unchanged);
- `random_projection=SEED`: the projector's weights are re-drawn from `SEED` (output gain kept), i.e. world tokens
  carry the picture through an untrained projection;
- `num_world_steps`: passed to every `generate` call (0 = the current frame only).

[Contract] `gemma3-baseline` is exactly Gemma 3 (no TheWorld code in its forward pass), and an ablation changes only
the world embeddings, nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from theworld.constants import DEFAULT_GEMMA_MODEL
from theworld.errors import first_line

logger = logging.getLogger(__name__)

BASELINE = "gemma3-baseline"
WorldAblation = Literal["none", "zero"]


@dataclass(frozen=True)
class EvalModelSpec:
    """One evaluated model; `label` names it in results files and comparison tables."""

    model: str
    base_model: str = DEFAULT_GEMMA_MODEL  # what `gemma3-baseline` loads
    cosmos_model: str | None = None  # None = the checkpoint's own cosmos_model_name
    world_ablation: WorldAblation = "none"
    random_projection: int | None = None
    num_world_steps: int = 0

    def __post_init__(self) -> None:
        if self.world_ablation not in ("none", "zero"):
            raise ValueError(f"--world-ablation: expected 'none' or 'zero', got {self.world_ablation!r}")
        if self.is_baseline and (self.world_ablation != "none" or self.random_projection is not None):
            raise ValueError(f"{BASELINE} has no world tokens: --world-ablation/--random-projection do not apply")
        if self.num_world_steps < 0:
            raise ValueError(f"--num_world_steps: expected >= 0, got {self.num_world_steps}")

    @property
    def is_baseline(self) -> bool:
        return self.model == BASELINE

    @property
    def label(self) -> str:
        if self.is_baseline:
            return BASELINE
        parts = [self.model.rstrip("/").split("/")[-1]]
        if self.world_ablation == "zero":
            parts.append("zero-world")
        if self.random_projection is not None:
            parts.append(f"random-projection-{self.random_projection}")
        parts.append(f"steps{self.num_world_steps}")
        return "+".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}

    def generate_kwargs(self) -> dict[str, Any]:
        """Extra `model.generate` arguments of this spec."""
        return {} if self.is_baseline else {"num_world_steps": self.num_world_steps}


def load_eval_model(spec: EvalModelSpec, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """The model of `spec` in eval mode, with a `.processor`; loading errors become one-line `ValueError`s."""
    if spec.is_baseline:
        from transformers import AutoProcessor, Gemma3ForConditionalGeneration

        try:
            model: Any = Gemma3ForConditionalGeneration.from_pretrained(spec.base_model, dtype=dtype)
            model.processor = AutoProcessor.from_pretrained(spec.base_model)
        except (OSError, ValueError) as error:
            first = first_line(error)
            raise ValueError(f"{BASELINE}: cannot load --base-model {spec.base_model!r}: {first}") from None
        return model.to(device).eval()

    from theworld.modeling import TheWorld

    overrides: dict[str, Any] = {"dtype": dtype}
    if spec.cosmos_model is not None:
        overrides["cosmos_model_name"] = spec.cosmos_model
    model = TheWorld.from_pretrained(spec.model, **overrides)
    if not model.config.enable_world and (spec.world_ablation != "none" or spec.random_projection is not None):
        raise ValueError(f"{spec.model}: enable_world=False, so there are no world tokens to ablate")
    if spec.random_projection is not None:
        randomize_projection(model, spec.random_projection)
    if spec.world_ablation == "zero":
        zero_world_tokens(model)
    return model.to(device).eval()


@torch.no_grad()
def randomize_projection(model: Any, seed: int) -> None:
    """Re-draw the world projector's weights from `seed` (normal, the LM's initializer range; biases zero), keeping
    its calibrated output gain, so world tokens keep their scale but lose what training taught them."""
    generator = torch.Generator().manual_seed(int(seed))
    std = float(model.config.get_text_config().initializer_range)
    for name, param in model.world_projector.named_parameters():
        if name.endswith("output_scale"):
            continue
        if name.endswith("bias"):
            param.zero_()
            continue
        values = torch.randn(param.shape, generator=generator) * (0.1 if "temporal" in name else std)
        param.copy_(values.to(param.dtype))
    logger.info("world projection re-drawn from seed %d", seed)


def zero_world_tokens(model: Any) -> torch.utils.hooks.RemovableHandle:
    """Make every world embedding zero (a forward hook on the projector); returns the hook handle."""

    def hook(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(output)

    return model.world_projector.register_forward_hook(hook)
