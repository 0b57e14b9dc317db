"""Train TheWorld on synthetic "Is the red square left of the blue circle?" questions with a plain PyTorch loop.

python examples/simple_training.py                  # world tokens on, tiny offline checkpoints in .tiny
python examples/simple_training.py --no-world       # the Gemma-only baseline, trained the same way
python examples/simple_training.py --blank-siglip   # world-only probe: SigLIP sees a grey picture, the VAE the real one

Data: `make_synthetic_spatial` left_of/above questions about the --colors (see "The tiny demo" in
docs/training/training.md).
Accuracy comes from one teacher-forced forward: "yes/no" compares the logits of "yes" and "no" (first tokens) at the
answer position; "greedy" needs each answer token and `<end_of_turn>` to be the arg-max: greedy `generate()`'s answer.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import PIL.Image
import torch
from transformers import get_cosine_schedule_with_warmup, set_seed

from theworld import TheWorld
from theworld.constants import DEFAULT_COSMOS_MODEL, PROJECTION_MODES
from theworld.data.collator import TheWorldCollator
from theworld.data.datasets import TheWorldDataset
from theworld.data.labels import IGNORE_INDEX
from theworld.data.synthetic_spatial import majority_rate, make_synthetic_spatial
from theworld.testing import build_tiny_checkpoints


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add, flag = p.add_argument, argparse.BooleanOptionalAction
    add("--tiny-dir", type=Path, default=Path(".tiny"), help="tiny checkpoints, built if missing")
    add("--model", help="Gemma 3 checkpoint, dir or Hub id (default: the tiny ones, with their tiny Cosmos VAE)")
    add("--cosmos", default=DEFAULT_COSMOS_MODEL, help="Cosmos-Predict2 checkpoint (dir or Hub id) with a vae/")
    add("--steps", type=int, default=300)
    add("--batch-size", type=int, default=32)
    add("--lr", type=float, default=5e-4)
    add("--warmup", type=int, default=100, help="linear warmup steps, then cosine decay to 0")
    add("--train-samples", type=int, default=3000)
    add("--eval-samples", type=int, default=200)
    add("--colors", default="red,blue", help="subject,object colours of the questions kept; 'any': all (hard)")
    add("--enable-world", dest="enable_world", action="store_true", default=True)
    add("--no-world", dest="enable_world", action="store_false", help="the Gemma-only baseline")
    add("--projection-mode", choices=PROJECTION_MODES, default="spatial", help="pooled: 2x2-pooled spatial tokens")
    add("--blank-siglip", action="store_true", help="SigLIP sees a grey picture (world-only probe)")
    # A random tiny LM cannot learn while frozen: train everything by default. Freeze both for a real Gemma 3.
    add("--freeze-vision", action=flag, default=False)
    add("--freeze-language", action=flag, default=False)
    add("--seed", type=int, default=0)
    add("--threads", type=int, default=1, help="torch CPU threads")
    return p.parse_args(argv)


def spatial_data(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    over = 1 if args.colors == "any" else 14  # 3 of 4 colours per picture: 1 question in 12 names a colour pair
    n = {"train": args.train_samples, "test": args.eval_samples}
    data = make_synthetic_spatial(n["train"] * over, n["test"] * over, seed=args.seed, relations=["left_of", "above"])
    return {k: [r for r in records if args.colors in ("any", colors(r))][: n[k]] for k, records in data.items()}


def colors(record: dict[str, Any]) -> str:  # "subject,object" colours of the question
    return ",".join(record["meta"]["shapes"][record["meta"][role]]["color"] for role in ("subject", "object"))


def model_inputs(batch: dict[str, Any], model: TheWorld, grey: Any, latents: Any = None) -> dict[str, Any]:
    """--blank-siglip: SigLIP sees grey, the VAE the real picture. Cached VAE latents become `world_embeds`."""
    if grey is not None:
        batch["pixel_values"] = grey.expand_as(batch["pixel_values"])
    if latents is not None:
        batch.pop("world_pixel_values")
        batch["world_embeds"] = model.world_projector(latents)  # [B, N, D]
    return batch


@torch.no_grad()
def evaluate(model: TheWorld, test: TheWorldDataset, collator: Any, yes_no: list[int], grey: Any) -> dict[str, float]:
    model.eval()
    choice = greedy = 0
    for rows in torch.arange(len(test)).split(50):
        batch = collator([test[int(i)] for i in rows])
        targets = batch.pop("labels")[:, 1:]  # the logits at position i predict token i + 1
        logits = model(**model_inputs(batch, model, grey)).logits[:, :-1]  # [B, L-1, V]
        greedy += int(((logits.argmax(-1) == targets) | (targets == IGNORE_INDEX)).all(dim=1).sum())
        rows, first = torch.arange(len(targets)), (targets != IGNORE_INDEX).int().argmax(dim=1)  # first answer token
        said_yes = logits[rows, first, yes_no[0]] > logits[rows, first, yes_no[1]]
        choice += int((said_yes == (targets[rows, first] == yes_no[0])).sum())
    model.train()
    return {"yes/no": choice / len(test), "greedy": greedy / len(test)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    set_seed(args.seed)  # the world projector of a freshly converted checkpoint is randomly initialized
    if args.model is None:
        tiny = build_tiny_checkpoints(args.tiny_dir)  # returns at once when already built
        args.model, args.cosmos = str(tiny.gemma), str(tiny.cosmos)
    world = {"cosmos_model_name": args.cosmos, "world_image_size": 64, "world_projection_mode": args.projection_mode}
    freeze = {"freeze_gemma_vision": args.freeze_vision, "freeze_gemma_language": args.freeze_language}
    model = TheWorld.from_pretrained(args.model, enable_world=args.enable_world, **world, **freeze)
    processor, start = model.processor, time.perf_counter()
    data, collator = spatial_data(args), TheWorldCollator(processor)
    train, test = TheWorldDataset(data["train"]), TheWorldDataset(data["test"])
    latents, vae = None, model.world_encoder
    if vae is not None and model.config.freeze_cosmos_vae:
        # The frozen VAE is deterministic (posterior mean): encode each training picture once, not once per epoch.
        pics = [record["image"] for record in data["train"]]
        with torch.no_grad():
            latents = torch.cat([vae(processor.world_pixels(pics[i : i + 64])) for i in range(0, len(pics), 64)])
    yes_no = [processor.tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in ("yes", "no")]
    grey_picture = PIL.Image.new("RGB", (64, 64), (128, 128, 128))
    grey = processor.image_processor([grey_picture], return_tensors="pt")["pixel_values"] if args.blank_siglip else None

    before = evaluate(model, test, collator, yes_no, grey)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr)
    schedule = get_cosine_schedule_with_warmup(optimizer, args.warmup, args.steps)
    losses: list[float] = []
    train_start, train_cpu = time.perf_counter(), time.process_time()
    while len(losses) < args.steps:
        for rows in torch.randperm(len(train)).split(args.batch_size)[: args.steps - len(losses)]:  # a random epoch
            batch = collator([train[int(i)] for i in rows])
            loss = model(**model_inputs(batch, model, grey, None if latents is None else latents[rows])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if len(losses) % 25 == 0:
                print(f"step {len(losses):4d}  loss {sum(losses[-25:]) / 25:.4f}", flush=True)
    train_seconds, cpu_seconds = time.perf_counter() - train_start, time.process_time() - train_cpu
    after = evaluate(model, test, collator, yes_no, grey)

    run = "probe" if args.blank_siglip else "world" if args.enable_world else "gemma"
    header = "run | world tokens | steps | steps/s | train s (CPU s) | data+train+eval s | majority | yes/no | greedy"
    tokens = f"{model.config.num_world_tokens()} {args.projection_mode}" if args.enable_world else "0"
    row = [run, tokens, args.steps, f"{args.steps / train_seconds:.2f}", f"{train_seconds:.0f} ({cpu_seconds:.0f})"]
    row += [f"{time.perf_counter() - start:.0f}", f"{majority_rate(data['test']):.1%}"]
    row += [f"{before[key]:.1%} → {after[key]:.1%}" for key in ("yes/no", "greedy")]
    print(f"\n| {header} |\n{'|---' * len(row)}|\n| {' | '.join(map(str, row))} |")
    return {"model": model, "losses": losses, "before": before, "after": after, "majority": majority_rate(data["test"])}


if __name__ == "__main__":
    main()
