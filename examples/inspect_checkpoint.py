"""Print what a saved TheWorld checkpoint holds: world settings, tensors, what trains, the processor's special tokens.

    python examples/inspect_checkpoint.py                         # a tiny delta checkpoint, saved in a temp dir
    python examples/inspect_checkpoint.py outputs/first-run       # any saved TheWorld: a directory or a Hub id
    python examples/inspect_checkpoint.py me/theworld-run --no-model    # files only: never loads the weights

Sections:
- config: the world settings of `config.json` (`TheWorldConfig`), and how many world tokens a picture becomes;
- weights: every tensor of `model.safetensors` (or of the shards of `model.safetensors.index.json`) with its shape,
  dtype and size, grouped by component, read from the safetensors headers without loading a tensor. A *delta*
  checkpoint holds only what differs from `world_base_model` (the world modules and whatever was unfrozen); a *full*
  one holds the whole Gemma too. A trainable Cosmos VAE is saved in `world_vae/`; a frozen one never is.
- trainable parameters: `TheWorld.from_pretrained(checkpoint)` and the table of `format_parameter_table`;
- processor: the special tokens and their ids, checked against the ids recorded in the config.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from safetensors import safe_open
from transformers import AutoConfig, AutoProcessor, set_seed
from transformers.utils.hub import cached_file

from theworld import TheWorld, TheWorldConfig
from theworld.constants import (
    EOW_TOKEN,
    GEMMA_BOI_TOKEN,
    GEMMA_END_OF_TURN,
    GEMMA_EOI_TOKEN,
    GEMMA_IMAGE_TOKEN,
    SOW_TOKEN,
    WORLD_TOKEN,
)
from theworld.modeling.freezing import format_parameter_table
from theworld.testing import build_tiny_checkpoints

WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
WORLD_SETTINGS = (
    "enable_world",
    "cosmos_model_name",
    "world_image_size",
    "world_projection_mode",
    "num_world_steps",
    "max_world_steps",
    "world_projector_hidden_size",
    "freeze_gemma_vision",
    "freeze_gemma_language",
    "freeze_cosmos_vae",
    "world_base_model",
    "world_checkpoint_format",
)
# Tensor name prefix → component (the first match wins; the same split as theworld.modeling.freezing).
COMPONENTS = (
    ("world_projector.", "world_projector"),
    ("world_token_embedding.", "world_projector"),
    ("model.vision_tower.", "gemma_vision"),
    ("model.multi_modal_projector.", "gemma_vision"),
    ("model.language_model.", "gemma_language"),
    ("lm_head.", "gemma_language"),
)
# Bytes per value of the safetensors dtype names (an unknown one counts 0 bytes rather than failing the listing).
ITEM_BYTES = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
TOKENS = (SOW_TOKEN, WORLD_TOKEN, EOW_TOKEN, GEMMA_BOI_TOKEN, GEMMA_IMAGE_TOKEN, GEMMA_EOI_TOKEN, GEMMA_END_OF_TURN)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", help="saved TheWorld: directory or Hub id (default: a tiny one)")
    parser.add_argument("--tiny-dir", type=Path, default=Path(".tiny"), help="tiny checkpoints, built if missing")
    parser.add_argument("--no-model", action="store_true", help="skip loading the model (no trainable table)")
    return parser.parse_args(argv)


def component(name: str) -> str:
    return next((label for prefix, label in COMPONENTS if name.startswith(prefix)), "other")


def weight_files(checkpoint: str) -> list[Path]:
    """The safetensors file(s) of a checkpoint: `model.safetensors`, or the shards listed in its index."""
    try:
        return [Path(str(cached_file(checkpoint, WEIGHTS)))]
    except OSError:
        pass  # a large full checkpoint is sharded: read the index instead
    try:
        index = Path(str(cached_file(checkpoint, WEIGHTS_INDEX)))
    except OSError as error:
        raise ValueError(f"{checkpoint}: neither {WEIGHTS} nor {WEIGHTS_INDEX} could be read ({error})") from None
    shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    return [Path(str(cached_file(checkpoint, shard))) for shard in shards]


def tensor_table(files: list[Path]) -> dict[str, tuple[list[int], str, int]]:
    """{tensor name: (shape, dtype, bytes)} from the safetensors headers (no tensor is loaded)."""
    table: dict[str, tuple[list[int], str, int]] = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open is not a dict: no `in`/iteration protocol)
                piece = handle.get_slice(name)
                shape = list(piece.get_shape())
                dtype = str(piece.get_dtype())
                table[name] = (shape, dtype, math.prod(shape) * ITEM_BYTES.get(dtype, 0))
    return table


def print_config(config: TheWorldConfig) -> None:
    print("== config (world settings)")
    for key in WORLD_SETTINGS:
        print(f"  {key:<28} {getattr(config, key)!r}")
    print(
        f"  -> {config.num_world_tokens()} world tokens per picture ({config.tokens_per_world_frame()} per latent "
        f"frame x {config.num_latent_frames()} frame(s)), {config.mm_tokens_per_image} SigLIP tokens per picture"
    )


def print_weights(table: dict[str, tuple[list[int], str, int]], config: TheWorldConfig) -> dict[str, int]:
    kind = config.world_checkpoint_format
    note = f"only what differs from {config.world_base_model}" if kind == "delta" else "every Gemma tensor"
    print(f"\n== weights ({kind} checkpoint: {note}; the frozen Cosmos VAE is never saved)")
    by_component: dict[str, list[str]] = defaultdict(list)
    for name in table:
        by_component[component(name)].append(name)
    sizes: dict[str, int] = {}
    for label, names in by_component.items():
        sizes[label] = sum(table[name][2] for name in names)
        count = sum(math.prod(table[name][0]) for name in names)
        print(f"  {label}: {len(names)} tensors, {count:,} values, {sizes[label] / 1024:.1f} KB")
        for name in sorted(names)[:8]:
            shape, dtype, _ = table[name]
            print(f"    {name:<64} {dtype:<5} {shape}")
        if len(names) > 8:
            print(f"    ... {len(names) - 8} more")
    print(f"  total {sum(sizes.values()) / 1024:.1f} KB")
    return sizes


def special_tokens(checkpoint: str, config: TheWorldConfig) -> dict[str, int]:
    """{token: id} from the saved processor's tokenizer; a world token whose id differs from the config is an error."""
    processor = AutoProcessor.from_pretrained(checkpoint)
    tokenizer = processor.tokenizer
    names = (*TOKENS, str(tokenizer.bos_token), str(tokenizer.pad_token))
    ids = {token: int(tokenizer.convert_tokens_to_ids(token)) for token in names}
    print(f"\n== processor ({type(processor).__name__}: {len(tokenizer)} tokens in the tokenizer)")
    for token, token_id in ids.items():
        print(f"  {token:<22} {token_id}")
    print(f"  world placeholders per picture: {getattr(processor, 'num_world_tokens', 0)}")
    recorded = {SOW_TOKEN: config.sow_token_id, EOW_TOKEN: config.eow_token_id, WORLD_TOKEN: config.world_token_id}
    if config.enable_world:
        wrong = {token: (ids[token], recorded[token]) for token in recorded if ids[token] != recorded[token]}
        if wrong:
            raise ValueError(f"{checkpoint}: tokenizer ids differ from config.json (tokenizer, config): {wrong}")
        print("  world token ids match config.json (sow_token_id, eow_token_id, world_token_id)")
    return ids


def inspect_checkpoint(checkpoint: str, load_model: bool = True) -> dict[str, Any]:
    """Print every section for `checkpoint` (a directory or Hub id) and return what was found."""
    config = AutoConfig.from_pretrained(checkpoint)
    if not isinstance(config, TheWorldConfig):
        raise ValueError(f"{checkpoint}: not a saved TheWorld (config.json model_type={config.model_type!r})")
    print(f"checkpoint: {checkpoint}")
    print_config(config)
    table = tensor_table(weight_files(checkpoint))
    sizes = print_weights(table, config)
    rows: list[tuple[str, int, int]] = []
    if load_model:
        model = TheWorld.from_pretrained(checkpoint)
        rows = model.trainable_parameter_table()
        print("\n== trainable parameters (as loaded, the config's freeze set)")
        print(format_parameter_table(rows))
    tokens = special_tokens(checkpoint, config)
    return {"config": config, "tensors": table, "sizes": sizes, "trainable": rows, "tokens": tokens}


def tiny_checkpoint(tiny_dir: Path, out: Path) -> Path:
    """A converted tiny TheWorld saved as a delta checkpoint in `out` (what a projection-only run leaves)."""
    tiny = build_tiny_checkpoints(tiny_dir)  # returns at once when already built
    set_seed(0)
    model = TheWorld.from_pretrained(tiny.gemma, cosmos_model_name=str(tiny.cosmos), world_image_size=64)
    model.save_pretrained(out, delta=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.checkpoint:
        return inspect_checkpoint(args.checkpoint, load_model=not args.no_model)
    with tempfile.TemporaryDirectory(prefix="theworld-inspect-") as work:
        checkpoint = tiny_checkpoint(args.tiny_dir, Path(work) / "tiny-delta")
        return inspect_checkpoint(str(checkpoint), load_model=not args.no_model)


if __name__ == "__main__":
    main()
