"""Answer a question about a picture with TheWorld (world tokens on), with the Gemma-only baseline, and optionally
with a Cosmos rollout (world tokens for the picture plus predicted future frames).

python examples/inference.py --tiny-dir .tiny              # offline, on the tiny checkpoints (`make demo`)
python examples/inference.py --tiny-dir .tiny --num-world-steps 4 --rollout-steps 4   # + a (tiny) Cosmos rollout
python examples/inference.py --model google/gemma-3-4b-it --image cat.jpg --prompt "Where is the cat?"

Rollout: `--num-world-steps 4k` predicts 4k future frames (k latent frames) with the Cosmos-Predict2 Video2World
transformer of `--cosmos` (loaded on first use; `--tiny-dir` uses the tiny complete pipeline in cosmos_pipeline/), so
each picture brings (1 + k) x as many world tokens. `--rollout-steps` sets the denoising steps (default: the model's,
35 as in Cosmos-Predict2; fewer is faster and blurrier).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from transformers import set_seed

from theworld import TheWorld
from theworld.constants import DEFAULT_COSMOS_MODEL, DEFAULT_GEMMA_MODEL
from theworld.modeling.freezing import format_parameter_table
from theworld.testing.pictures import make_picture


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny-dir", type=Path, help="directory written by `python -m theworld.testing`")
    parser.add_argument("--model", default=DEFAULT_GEMMA_MODEL, help="Gemma 3 or TheWorld checkpoint (dir or Hub id)")
    parser.add_argument("--cosmos", default=DEFAULT_COSMOS_MODEL, help="Cosmos-Predict2 checkpoint (dir or Hub id)")
    parser.add_argument("--image", help="picture file (default: a generated picture of coloured shapes)")
    parser.add_argument("--prompt", default="Is the red shape left of the blue shape?")
    parser.add_argument("--world-image-size", type=int, default=None, help="VAE input size (default: the model's)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--num-world-steps", type=int, default=0, help="rollout: future frames (0, 4, 8, ...)")
    parser.add_argument("--rollout-steps", type=int, default=None, help="rollout denoising steps (default: 35)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_seed(0)  # the world projector of a freshly converted checkpoint is randomly initialized

    model_name, cosmos, size = args.model, args.cosmos, args.world_image_size
    if args.tiny_dir is not None:
        # cosmos/ holds only the VAE; cosmos_pipeline/ is a complete tiny Video2World checkpoint (same VAE files).
        cosmos_dir = "cosmos_pipeline" if args.num_world_steps else "cosmos"
        model_name, cosmos, size = str(args.tiny_dir / "gemma"), str(args.tiny_dir / cosmos_dir), size or 64
    image = args.image or make_picture(seed=7)
    world_kwargs: dict[str, Any] = {"cosmos_model_name": cosmos} | ({"world_image_size": size} if size else {})
    if args.rollout_steps is not None:
        world_kwargs["world_rollout_steps"] = args.rollout_steps

    start = time.perf_counter()
    world = TheWorld.from_pretrained(model_name, **world_kwargs).eval()
    answer = world.generate(image, args.prompt, max_new_tokens=args.max_new_tokens)
    world_seconds = time.perf_counter() - start
    baseline = TheWorld.from_pretrained(model_name, enable_world=False).eval()
    baseline_answer = baseline.generate(image, args.prompt, max_new_tokens=args.max_new_tokens)

    print(f"prompt:                {args.prompt}")
    print(f"TheWorld answer:       {answer!r}   (load + generate {world_seconds:.1f} s)")
    print(f"Gemma-only answer:     {baseline_answer!r}")
    print(f"world tokens / image:  {world.config.num_world_tokens()} ({world.config.world_projection_mode} mode)")
    print(f"image tokens / image:  {world.config.mm_tokens_per_image}")
    print("trainable parameters:")
    print(format_parameter_table(world.trainable_parameter_table()))
    result: dict[str, Any] = {"world": answer, "baseline": baseline_answer, "model": world}

    if args.num_world_steps:
        # Rollout: the processor inserts the placeholders of 1 + steps // 4 latent frames, the model fills them from
        # the VAE encoding of the picture plus the frames Cosmos predicts (seeded: the same picture, the same tokens).
        steps = args.num_world_steps
        start = time.perf_counter()
        rollout_answer = world.generate(image, args.prompt, max_new_tokens=args.max_new_tokens, num_world_steps=steps)
        seconds = time.perf_counter() - start
        print(f"\nrollout, num_world_steps={steps} ({world.config.world_rollout_steps} denoising steps):")
        print(f"TheWorld answer:       {rollout_answer!r}   (generate {seconds:.1f} s, the first call loads Cosmos)")
        frames = world.config.num_latent_frames(steps)
        print(f"world tokens / image:  {world.config.num_world_tokens(steps)} ({frames} latent frames)")
        result["rollout"] = rollout_answer
    if args.tiny_dir is not None:
        print("(tiny random checkpoints: the answers are noise until the model is trained)")
    return result


if __name__ == "__main__":
    main()
