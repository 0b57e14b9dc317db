"""Load TheWorld checkpoints the way a user loads them from the Hugging Face Hub, and ask one question with each.

    python examples/load_from_hub.py                                   # offline, on the tiny checkpoints in .tiny
    python examples/load_from_hub.py --model me/theworld-run           # a saved TheWorld on the Hub (or a directory)
    python examples/load_from_hub.py --model me/theworld-run --checkpoint checkpoint-500   # one pushed checkpoint

With `--model`, this is the real thing: `TheWorld.from_pretrained(hub_id_or_dir)`, or
`TheWorld.from_checkpoint_hub(repo, checkpoint_name)` for a checkpoint of a training run pushed with
`hub_strategy: all_checkpoints` / `checkpoint`. A delta checkpoint fetches the base Gemma named in its config, and the
Cosmos VAE, on first use.

Without `--model` (no network needed), the same calls run on the tiny checkpoints (`--tiny-dir`, built when missing):

1. a converted tiny TheWorld is saved with `save_pretrained(dir, delta=True)` and loaded back with
   `TheWorld.from_pretrained(dir)`, with no other argument, exactly as a user loads a downloaded checkpoint;
2. a run "pushed" with `hub_strategy: all_checkpoints` (final model at the root, `checkpoint-N/` beside it) is put in
   a Hugging Face cache directory in the Hub's own cache layout (`models--<owner>--<name>/refs/main`,
   `snapshots/<commit>/`), and loaded by repo id with `local_files_only=True`: `from_pretrained("<owner>/<name>")`
   and `from_checkpoint_hub("<owner>/<name>", "checkpoint-N")` go through `huggingface_hub` exactly as they do on a
   machine that downloaded the run before and is now offline.

Every load is checked: the reloaded model's logits must equal those of the model that was saved.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import set_seed

from theworld import TheWorld
from theworld.testing import build_tiny_checkpoints, make_picture

PROMPT = "Is the red shape left of the blue shape?"
DEMO_REPO = "local-demo/theworld-tiny-run"  # the repo id of the offline demo's pushed run
CHECKPOINTS = ("checkpoint-1", "checkpoint-2")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a saved TheWorld: Hub id or directory (default: the offline tiny demo)")
    parser.add_argument("--checkpoint", help="with --model: a pushed checkpoint folder, e.g. checkpoint-500")
    parser.add_argument("--tiny-dir", type=Path, default=Path(".tiny"), help="tiny checkpoints, built if missing")
    parser.add_argument("--out", type=Path, help="offline demo: keep its checkpoints here (default: a temp dir)")
    parser.add_argument("--image", help="picture file (default: a generated picture of coloured shapes)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    return parser.parse_args(argv)


def logits(model: TheWorld, image: Any, prompt: str = PROMPT) -> torch.Tensor:
    """Next-token logits [1, L, V] for one chat-formatted question about `image` (a fixed input to compare models)."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = model.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = model.processor(text=text, images=[image], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model.eval()(**inputs).logits


def describe(name: str, model: TheWorld) -> str:
    config = model.config
    trainable, total, percent = model.get_trainable_parameters()
    return (
        f"{name}: world={config.enable_world}, {config.num_world_tokens()} world tokens/picture "
        f"({config.world_projection_mode}, {config.world_image_size} px), base {config.world_base_model}, "
        f"{trainable:,} of {total:,} parameters trainable ({percent:.1f}%)"
    )


def load_real(args: argparse.Namespace) -> dict[str, Any]:
    """`--model`: a Hub id or directory, or one checkpoint of a pushed run."""
    if args.checkpoint:
        model = TheWorld.from_checkpoint_hub(args.model, checkpoint_name=args.checkpoint)
    else:
        model = TheWorld.from_pretrained(args.model)
    model.eval()
    print(describe(f"{args.model}" + (f" [{args.checkpoint}]" if args.checkpoint else ""), model))
    image = args.image or make_picture(seed=7, size=256)
    answer = model.generate(image, args.prompt, max_new_tokens=args.max_new_tokens)
    print(f"Q: {args.prompt}\nA: {answer}")
    return {"model": model, "answer": answer}


# ---- the offline demo ----
def nudge_world_weights(model: TheWorld, seed: int) -> None:
    """Move the world projector a little, standing in for a few training steps between two checkpoints."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.world_projector.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator).to(parameter.dtype))


def file_sizes(directory: Path) -> str:
    files = sorted(p for p in directory.iterdir() if p.is_file())
    return ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KB" for p in files)


def write_pushed_run_to_cache(run_dir: Path, cache_dir: Path, repo_id: str) -> Path:
    """Put a local run folder into `cache_dir` the way `huggingface_hub` caches a downloaded repo; returns its snapshot.

    Layout (the Hub cache's own): `models--<owner>--<name>/refs/main` holds the commit hash and
    `models--<owner>--<name>/snapshots/<commit>/` the repo's files. The "commit" is a hash of the files' contents.
    """
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    digest = hashlib.sha1()
    for path in files:
        digest.update(path.relative_to(run_dir).as_posix().encode())
        digest.update(path.read_bytes())
    commit = digest.hexdigest()
    repo_folder = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_folder / "snapshots" / commit
    for path in files:
        target = snapshot / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(commit)
    return snapshot


def offline_demo(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    tiny = build_tiny_checkpoints(args.tiny_dir)  # returns at once when already built
    image = args.image or make_picture(seed=7)
    set_seed(0)  # a freshly converted checkpoint's world projector is randomly initialized
    model = TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64).eval()
    print(describe("converted tiny Gemma 3", model))

    # 1. save_pretrained(delta=True) → from_pretrained(dir): the few world tensors on top of the base Gemma.
    saved = work / "saved"
    model.save_pretrained(saved, delta=True)
    print(f"\nsaved {saved.name}/: {file_sizes(saved)}")
    reloaded = TheWorld.from_pretrained(saved).eval()
    same_dir = torch.equal(logits(reloaded, image), logits(model, image))
    print(f"TheWorld.from_pretrained({saved.name!r}): logits identical to the saved model: {same_dir}")
    print(f"  A: {reloaded.generate(image, args.prompt, max_new_tokens=args.max_new_tokens)!r}")

    # 2. A run pushed with hub_strategy all_checkpoints: checkpoint-1/, checkpoint-2/, final model at the root.
    run = work / "pushed-run"
    expected: dict[str, torch.Tensor] = {}
    for step, name in enumerate((*CHECKPOINTS, ""), start=1):
        nudge_world_weights(model, seed=step)
        model.save_pretrained(run / name, delta=True)
        expected[name or "final"] = logits(model, image)
    cache = work / "hf-cache"
    snapshot = write_pushed_run_to_cache(run, cache, DEMO_REPO)
    layout = sorted(p.relative_to(snapshot).as_posix() for p in snapshot.iterdir())
    print(f"\nHub cache of {DEMO_REPO}: {cache.name}/models--{DEMO_REPO.replace('/', '--')}/ ({', '.join(layout)})")
    hub = {"cache_dir": str(cache), "local_files_only": True}
    final = TheWorld.from_pretrained(DEMO_REPO, **hub).eval()
    same_final = torch.equal(logits(final, image), expected["final"])
    print(f"TheWorld.from_pretrained({DEMO_REPO!r}): the final model, logits as pushed: {same_final}")
    same_checkpoint = {}
    for name in CHECKPOINTS:
        loaded = TheWorld.from_checkpoint_hub(DEMO_REPO, checkpoint_name=name, **hub).eval()
        same_checkpoint[name] = torch.equal(logits(loaded, image), expected[name])
        print(f"TheWorld.from_checkpoint_hub({DEMO_REPO!r}, {name!r}): logits as pushed: {same_checkpoint[name]}")
    try:
        TheWorld.from_checkpoint_hub(DEMO_REPO, checkpoint_name="checkpoint-7", **hub)
        missing_error = ""
    except ValueError as error:
        missing_error = str(error)
    print(f"an unknown checkpoint is one line: {missing_error}")
    return {
        "same_after_reload": same_dir,
        "same_final": same_final,
        "same_checkpoint": same_checkpoint,
        "missing_checkpoint_error": missing_error,
        "saved_files": sorted(p.name for p in saved.iterdir()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.model:
        return load_real(args)
    if args.checkpoint:
        raise SystemExit("error: --checkpoint needs --model (the repo id of a pushed run)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        return offline_demo(args, args.out)
    with tempfile.TemporaryDirectory(prefix="theworld-load-") as work:
        return offline_demo(args, Path(work))


if __name__ == "__main__":
    main()
