"""`imagine`: look at what the world model predicts. A Cosmos rollout of one picture, decoded to frames, as a GIF
(or a PNG strip).

`imagine(model, image, steps, out_path)` rolls `steps` future frames out with the model's own rollout settings
(`TheWorld.world_rollout()`, seed `world_rollout_seed`), decodes the latents with the same Wan VAE and writes the
file; `imagine_rollout(rollout, image, steps, out_path, size)` does the same from a bare `CosmosRollout` (no Gemma
needed). `main(argv)` is the `theworld imagine IMAGE --steps 8 --out rollout.gif` command.

Frames: the Wan VAE decodes 1 + k latent frames into 1 + 4k frames, so a rollout of `steps` (a multiple of 4) gives
exactly 1 + steps frames; frame 0 is the VAE reconstruction of the picture itself. A GIF stores them all, except that
Pillow merges consecutive frames that are identical after its 256-colour quantization (a perfectly still prediction),
so a reader may count fewer; a PNG strip always shows 1 + steps panels side by side.

These pixels are a local visualization written to a file: Cosmos' guardrail is not run on them (see
`theworld.modeling.rollout.GuardrailStandIn`).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from theworld.data.image_inputs import load_image, world_pixels
from theworld.modeling.rollout import (
    DEFAULT_ROLLOUT_GUIDANCE,
    DEFAULT_ROLLOUT_STEPS,
    CosmosRollout,
    validate_world_steps,
)

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".gif", ".png")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_FPS = 4  # slow enough to follow a 9-frame rollout by eye


@dataclass(frozen=True)
class ImagineResult:
    """What `imagine` wrote: the file, its frames [1 + steps, S, S, 3] uint8, and the seconds spent."""

    path: Path
    frames: np.ndarray[Any, Any]
    rollout_seconds: float
    decode_seconds: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def _check_out_path(out_path: str | Path) -> Path:
    path = Path(out_path).expanduser()
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"out_path={str(out_path)!r}: expected a .gif (animation) or .png (strip) file name")
    if path.exists() and path.is_dir():
        raise ValueError(f"out_path={str(out_path)!r}: is a directory, expected a file name")
    return path


@torch.no_grad()
def decode_latents(rollout: CosmosRollout, latents: torch.Tensor) -> torch.Tensor:
    """Normalized latents [B, 16, T, h, w] → pixels [B, 1 + 4 (T - 1), 3, H, W] in [-1, 1] with the rollout's VAE."""
    encoder = rollout.encoder
    raw = latents.to(encoder.device, torch.float32) * encoder.latents_std + encoder.latents_mean
    decoded: Any = encoder.vae.decode(raw.to(encoder.vae_dtype))  # type: ignore[operator]
    video = decoded.sample.float().clamp(-1.0, 1.0)  # [B, 3, F, H, W]
    return video.permute(0, 2, 1, 3, 4)


def frames_to_uint8(video: torch.Tensor) -> np.ndarray[Any, Any]:
    """One video [F, 3, H, W] in [-1, 1] → [F, H, W, 3] uint8."""
    return ((video.permute(0, 2, 3, 1).cpu().numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def write_frames(frames: np.ndarray[Any, Any], out_path: str | Path, fps: int = DEFAULT_FPS) -> Path:
    """[F, H, W, 3] uint8 → a looping GIF (`.gif`) or a horizontal strip (`.png`), written atomically."""
    path = _check_out_path(out_path)
    if fps <= 0:
        raise ValueError(f"fps={fps}: expected a positive integer")
    pictures = [PIL.Image.fromarray(frame, mode="RGB") for frame in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    if path.suffix.lower() == ".gif":
        duration = max(1, round(1000 / fps))
        pictures[0].save(partial, format="GIF", save_all=True, append_images=pictures[1:], duration=duration, loop=0)
    else:
        height, width = frames.shape[1:3]
        strip = PIL.Image.new("RGB", (width * len(pictures), height))
        for index, picture in enumerate(pictures):
            strip.paste(picture, (index * width, 0))
        strip.save(partial, format="PNG")
    partial.replace(path)
    return path


def imagine_rollout(
    rollout: CosmosRollout,
    image: Any,
    steps: int,
    out_path: str | Path,
    size: int,
    seed: int = 0,
    num_inference_steps: int = DEFAULT_ROLLOUT_STEPS,
    guidance_scale: float = DEFAULT_ROLLOUT_GUIDANCE,
    fps: int = DEFAULT_FPS,
    max_world_steps: int | None = None,
) -> ImagineResult:
    """Roll `image` (a file path, PIL image, array or bytes) out `steps` frames at `size` x `size`, decode, write."""
    steps = validate_world_steps(steps, steps if max_world_steps is None else max_world_steps, field="steps")
    path = _check_out_path(out_path)
    pixels = world_pixels([load_image(image, "image")], size).to(rollout.encoder.device)
    started = time.perf_counter()
    latents = rollout.rollout(
        pixels, steps, seed=seed, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale
    )
    rolled = time.perf_counter()
    frames = frames_to_uint8(decode_latents(rollout, latents)[0])
    decoded = time.perf_counter()
    write_frames(frames, path, fps=fps)
    logger.info(
        "imagine: %d frames → %s (rollout %.2f s, decode %.2f s)", len(frames), path, rolled - started, decoded - rolled
    )
    return ImagineResult(path=path, frames=frames, rollout_seconds=rolled - started, decode_seconds=decoded - rolled)


def imagine(
    model: Any,
    image: Any,
    steps: int,
    out_path: str | Path,
    seed: int | None = None,
    num_inference_steps: int | None = None,
    guidance_scale: float | None = None,
    fps: int = DEFAULT_FPS,
) -> ImagineResult:
    """What `model` (a `TheWorld`) sees coming: its rollout of `image` over `steps` frames, decoded and written.

    Uses the model's VAE, `cosmos_model_name`, `world_image_size` and rollout settings (seed, denoising steps,
    guidance) unless given here, so the frames are the decoding of exactly the latents behind its world tokens.
    """
    config = model.config
    if not config.enable_world:
        raise ValueError("imagine: this model was built with enable_world=False (it has no world model)")
    steps = validate_world_steps(steps, config.max_world_steps, field="steps")
    return imagine_rollout(
        model.world_rollout(),
        image,
        steps,
        out_path,
        size=config.world_image_size,
        seed=config.world_rollout_seed if seed is None else seed,
        num_inference_steps=config.world_rollout_steps if num_inference_steps is None else num_inference_steps,
        guidance_scale=config.world_rollout_guidance if guidance_scale is None else guidance_scale,
        fps=fps,
        max_world_steps=config.max_world_steps,
    )


# ----------------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="theworld imagine",
        description="Decode a Cosmos-Predict2 rollout of a picture into frames (GIF animation or PNG strip).",
    )
    parser.add_argument("image", help="picture file")
    parser.add_argument("--steps", type=int, default=8, help="future frames to predict (0, 4, 8, ...; default 8)")
    parser.add_argument("--out", default="rollout.gif", help="output .gif or .png (default rollout.gif)")
    parser.add_argument(
        "--model", default=None, help="TheWorld checkpoint: use its Cosmos source, picture size and rollout settings"
    )
    parser.add_argument(
        "--cosmos-model", default=None, help="Cosmos-Predict2 Video2World checkpoint (without --model: the default one)"
    )
    parser.add_argument("--size", type=int, default=None, help="picture side without --model (default 256)")
    parser.add_argument("--seed", type=int, default=None, help="rollout seed (default: the model's, else 0)")
    parser.add_argument("--inference-steps", type=int, default=None, help="denoising steps (default: model's / 35)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: model's / 7.0)")
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS, help=f"GIF frame rate (default {DEFAULT_FPS})")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=tuple(DTYPES), help="weights dtype (default float32)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`theworld imagine IMAGE [--steps 8] [--out rollout.gif] [--model M | --cosmos-model C --size S] ...`.

    Prints the written path and the frame count. Bad input raises a one-line `ValueError` (the `theworld` command
    prints it and exits 2).
    """
    args = build_parser().parse_args(None if argv is None else list(argv))
    if not Path(args.image).is_file():
        raise ValueError(f"IMAGE {args.image}: no such file")
    _check_out_path(args.out)
    if args.model is not None:
        from theworld.modeling.theworld import TheWorld

        if args.size is not None:
            raise ValueError("--size: the picture size comes from --model (its world_image_size); drop --size")
        overrides = {"cosmos_model_name": args.cosmos_model} if args.cosmos_model else {}
        model: Any = TheWorld.from_pretrained(args.model, dtype=DTYPES[args.dtype], **overrides)
        model = model.to(args.device).eval()
        result = imagine(
            model,
            args.image,
            args.steps,
            args.out,
            seed=args.seed,
            num_inference_steps=args.inference_steps,
            guidance_scale=args.guidance,
            fps=args.fps,
        )
    else:
        from theworld.constants import DEFAULT_COSMOS_MODEL

        size = 256 if args.size is None else args.size
        if size <= 0 or size % 16:
            raise ValueError(f"--size {size}: expected a positive multiple of 16")
        from theworld.modeling.cosmos_encoder import CosmosWorldEncoder, load_cosmos_vae

        name = args.cosmos_model or DEFAULT_COSMOS_MODEL
        encoder = CosmosWorldEncoder(load_cosmos_vae(name, dtype=DTYPES[args.dtype])).to(args.device)
        rollout = CosmosRollout.from_pretrained(name, encoder=encoder)
        result = imagine_rollout(
            rollout,
            args.image,
            args.steps,
            args.out,
            size=size,
            seed=0 if args.seed is None else args.seed,
            num_inference_steps=DEFAULT_ROLLOUT_STEPS if args.inference_steps is None else args.inference_steps,
            guidance_scale=DEFAULT_ROLLOUT_GUIDANCE if args.guidance is None else args.guidance,
            fps=args.fps,
        )
    print(f"{result.path} ({result.num_frames} frames)")
    return 0


imagine_main = main
