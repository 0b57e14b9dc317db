"""LR range test (Smith, "Cyclical Learning Rates", 2015; fastai's `lr_find`): how high can the learning rate go?

`find_lr(config)` builds the model and the data exactly as a training run does (`build_model`, `build_datasets`,
`TheWorldCollator`, the config's seed, batch size, gradient accumulation, clipping and precision). It then takes
`num_steps` AdamW steps on the trainable parameters while the learning rate grows exponentially from `min_lr` to
`max_lr`, and records the loss of every step. The model is thrown away afterwards: nothing is saved or restored.

- Smoothing: an exponential moving average of the step losses, bias-corrected as in Adam
  (`avg = smooth * avg + (1 - smooth) * loss`, reported as `avg / (1 - smooth ** (step + 1))`).
- Divergence: the test stops at the first step whose smoothed loss exceeds `diverge_factor` × the lowest smoothed
  loss so far (that step is recorded), or before recording a step whose loss is not finite.
- Suggestion rule (`suggest_lr`): the LR where the smoothed loss falls fastest per decade of LR (most negative
  `d loss / d log10(lr)`), searched from the end of the first 10% of the steps (at least one step: the average is
  still settling there) up to the lowest smoothed loss. When the curve has no such descent (too few points, or a
  loss that never falls), the suggestion is the LR of the lowest smoothed loss divided by 10 (kept ≥ `min_lr`).
  `LRFinderResult.rule` says which rule gave the value.
- Per-component learning rates (`projector_learning_rate`, ...) keep their ratio to `learning_rate`: the swept value
  is the base `learning_rate`, as in the config.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import set_seed
from transformers.trainer_pt_utils import get_parameter_names

from theworld.data.collator import TheWorldCollator
from theworld.plot_charts import line_plot
from theworld.plots import new_figure, panel_boxes
from theworld.training.arguments import precision_flags
from theworld.training.build import build_datasets, build_model
from theworld.training.config import ConfigError, TrainingConfig
from theworld.training.run import component_learning_rates
from theworld.training.trainer import component_of

logger = logging.getLogger(__name__)

SKIP_START_FRACTION = 0.1  # the moving average is still settling over the first steps
# Parameters the HF Trainer exempts from weight decay (Trainer.get_decay_parameter_names in transformers 5.23).
NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


@dataclass
class LRFinderResult:
    """The curve of an LR range test. `losses` are the smoothed losses (see the module docstring)."""

    lrs: list[float]
    losses: list[float]
    suggested_lr: float
    raw_losses: list[float] = field(default_factory=list)
    rule: str = "steepest"  # "steepest" or "min_loss/10"
    diverged: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        text = json.dumps(asdict(self), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text


def find_lr(
    config: TrainingConfig,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    num_steps: int = 100,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRFinderResult:
    """Run the LR range test for `config` on a throwaway model (see the module docstring)."""
    _check_settings(min_lr, max_lr, num_steps, smooth, diverge_factor)
    set_seed(config.seed)
    model = build_model(config)
    train_dataset, _, _ = build_datasets(config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()  # type: ignore[arg-type]
    if config.use_gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW(_param_groups(model, config), lr=min_lr)
    collator = TheWorldCollator(model.processor, max_length=config.max_length, blank_siglip=config.blank_siglip_images)
    batches = _batches(train_dataset, config, collator)
    bf16, fp16 = precision_flags(config.mixed_precision)  # what the Trainer would use on this machine
    dtype = torch.bfloat16 if bf16 else torch.float16 if fp16 else None
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    trainable = [p for group in optimizer.param_groups for p in group["params"]]

    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    average, best, diverged = 0.0, math.inf, False
    for step in range(num_steps):
        lr = min_lr * (max_lr / min_lr) ** (step / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        loss = 0.0
        for _ in range(config.gradient_accumulation_steps):
            batch = {key: value.to(device) for key, value in next(batches).items()}
            autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
            with autocast:
                micro_loss = model(**batch).loss / config.gradient_accumulation_steps
            (scaler.scale(micro_loss) if scaler else micro_loss).backward()
            loss += float(micro_loss.detach())
        if not math.isfinite(loss):
            logger.info("lr %.3g: loss is not finite; stopping", lr)
            diverged = True
            break
        if scaler:
            scaler.unscale_(optimizer)
        if config.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        average = smooth * average + (1 - smooth) * loss
        current = average / (1 - smooth ** (step + 1))
        lrs.append(lr)
        raw.append(loss)
        smoothed.append(current)
        best = min(best, current)
        logger.debug("step %d: lr %.3g loss %.4f smoothed %.4f", step, lr, loss, current)
        if current > diverge_factor * best:
            logger.info("lr %.3g: smoothed loss %.4g > %g x best %.4g; stopping", lr, current, diverge_factor, best)
            diverged = True
            break
    if not lrs:
        raise ValueError(f"find_lr: the loss is not finite at the first step (lr={min_lr:g}); check the data and model")
    suggested, rule = suggest_lr(lrs, smoothed)
    logger.info("LR range test: %d steps, suggested learning_rate %.3g (%s)", len(lrs), suggested, rule)
    settings = {
        "min_lr": min_lr,
        "max_lr": max_lr,
        "num_steps": num_steps,
        "smooth": smooth,
        "diverge_factor": diverge_factor,
    }
    return LRFinderResult(lrs, smoothed, suggested, raw, rule, diverged, settings)


def suggest_lr(lrs: list[float], losses: list[float]) -> tuple[float, str]:
    """(suggested LR, rule): the steepest descent of `losses` before their minimum, else min-loss LR / 10."""
    if not lrs or len(lrs) != len(losses):
        raise ValueError(f"suggest_lr: expected as many losses as LRs (> 0), got {len(losses)} and {len(lrs)}")
    lowest = int(np.argmin(losses))
    start = max(1, int(len(losses) * SKIP_START_FRACTION))
    if lowest - start >= 2:
        span = slice(start, lowest + 1)
        slopes = np.gradient(np.asarray(losses[span]), np.log10(np.asarray(lrs[span])))  # loss per decade of LR
        steepest = int(np.argmin(slopes))
        if slopes[steepest] < 0:
            return lrs[start + steepest], "steepest"
    return max(lrs[lowest] / 10, lrs[0]), "min_loss/10"


def _check_settings(min_lr: float, max_lr: float, num_steps: int, smooth: float, diverge_factor: float) -> None:
    checks = (
        (0 < min_lr < max_lr, f"min_lr={min_lr!r}, max_lr={max_lr!r}: expected 0 < min_lr < max_lr", "min_lr"),
        (num_steps >= 2, f"num_steps={num_steps!r}: expected >= 2", "num_steps"),
        (0 <= smooth < 1, f"smooth={smooth!r}: expected in [0, 1)", "smooth"),
        (diverge_factor > 1, f"diverge_factor={diverge_factor!r}: expected > 1", "diverge_factor"),
    )
    for ok, message, key in checks:
        if not ok:
            raise ConfigError(f"find_lr: {message}", key=key)


def _param_groups(model: nn.Module, config: TrainingConfig) -> list[dict[str, Any]]:
    """The Trainer's groups (component x weight decay); `lr_scale` keeps per-component LRs in proportion."""
    decay = set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY_PATTERNS))
    rates = component_learning_rates(config)
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((component_of(name), name in decay), []).append(parameter)
    return [
        {
            "params": params,
            "lr_scale": rates.get(component, config.learning_rate) / config.learning_rate,
            "weight_decay": config.weight_decay if with_decay else 0.0,
        }
        for (component, with_decay), params in sorted(groups.items())
    ]


def _batches(dataset: Dataset[Any], config: TrainingConfig, collator: TheWorldCollator) -> Iterator[dict[str, Any]]:
    """Shuffled training batches, epoch after epoch, for as long as the test needs them."""
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise ConfigError("find_lr: the training set is empty", key="num_samples")
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=size >= config.batch_size,
        collate_fn=collator,
        num_workers=config.dataloader_num_workers,
        generator=torch.Generator().manual_seed(config.seed),
    )
    while True:
        yield from loader


# ---- the plot ----
def plot_lr_curve(result: LRFinderResult, path: str | os.PathLike[str]) -> Path:
    """Loss vs. LR (log x axis) as a PNG, with the suggestion marked: matplotlib if installed, else Pillow."""
    path = Path(path)
    try:
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError:
        plot_with_pillow(result, path)
        return path
    figure = figure_module.Figure(figsize=(8, 5), dpi=100)
    axes = figure.add_subplot()
    axes.plot(result.lrs, result.losses, label="smoothed loss")
    axes.axvline(result.suggested_lr, color="tab:red", linestyle="--", label=f"suggested {result.suggested_lr:.2g}")
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("loss")
    axes.set_title("LR range test")
    axes.legend()
    figure.savefig(path, format="png")
    return path


WIDTH, HEIGHT = 800, 500


def plot_with_pillow(result: LRFinderResult, path: Path) -> None:
    """A line chart (log-scale learning rate, smoothed loss, the suggestion marked), drawn with Pillow."""
    image = new_figure(WIDTH, HEIGHT)
    line_plot(
        image,
        panel_boxes(image, 1, 1)[0],
        result.lrs,
        result.losses,
        title="LR range test",
        xlabel="learning rate (log scale)",
        ylabel="loss (smoothed)",
        xlog=True,
        marker=(f"suggested {result.suggested_lr:.2g}", result.suggested_lr),
    )
    image.save(path, format="PNG")
