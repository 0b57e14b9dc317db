"""`WorldLatentCache`: world latents (before the trainable projector) kept per picture, in memory and on disk.

With a frozen VAE, the world latents of a picture (the VAE posterior mean, plus the seeded Cosmos rollout for
`num_world_steps` > 0) are a pure function of the picture's world pixels and of the frozen world model: the VAE's
config and weights, `cosmos_model_name`, the steps, the rollout's denoising steps / guidance / seed, the dtype. From
the second epoch on, a training run therefore re-computes exactly what it computed before; the cache returns it
instead. Only the projector (which trains) runs on the cached latents.

Keys. A row's key is the sha256 of a model identity (`world_latent_identity`: the items above, the VAE weights as a
sha256 computed once per VAE and recomputed only when a weight tensor was replaced or written in place) and of the
row of `world_pixel_values` (its dtype, shape and bytes; the processor already resized it to `world_image_size`, so
the resolution is in it). Any change of an item is another key, so a stale latent can never be served.

Stores. An in-memory LRU of `max_items` rows (CPU float32 tensors [16, T, h, w]: 64 KiB per picture at 256 px and
`num_world_steps=0`, times 1 + steps / 4 with a rollout), and, with `cache_dir`, one safetensors file per row under
`cache_dir/<first 2 hex digits of the key>/<key>.safetensors` (shard directories keep directories small). Files are
written to a temporary name and renamed (atomic: a reader sees no file or a whole one), so the processes of one run
(DDP) and later runs share them. A file that cannot be read, or whose metadata does not
name its key, is a miss (counted in `disk_errors`, then overwritten), never a crash; a cache directory that cannot
be written costs only the disk copy.

[Contract] The cache is never part of a checkpoint (it is not a module, a parameter, a buffer or a config field) and
is only used with a frozen VAE (`TheWorld.encode_world` bypasses it while any VAE parameter requires grad).
[Contract] A hit returns the latents computed when the picture was first encoded, bit for bit. The VAE's float
result for one picture depends (at ~1e-6) on the size of the batch it ran in, not on its batch-mates or position:
in fixed-size-batch training every first encoding runs in a full batch, so cached and uncached runs see identical
latents and losses (tests/test_latent_cache.py, benchmarks/latent_cache.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from theworld.errors import first_line

if TYPE_CHECKING:
    from theworld.modeling.configuration_theworld import TheWorldConfig
    from theworld.modeling.cosmos_encoder import CosmosWorldEncoder

logger = logging.getLogger(__name__)

CACHE_FORMAT = "theworld-world-latents/1"  # bump when the meaning of a cached tensor changes
LATENTS_TENSOR = "latents"
_WEIGHTS_DIGEST_ATTR = "_theworld_weights_digest"  # (fingerprint, sha256) stored on the VAE wrapper itself


def _tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw bytes of a tensor of any dtype (bfloat16 included, which numpy cannot represent)."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data  # a view of the bytes, no copy


# ---------------------------------------------------------------------------------------------------------------
# Identity of the frozen world model
# ---------------------------------------------------------------------------------------------------------------


def _named_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return sorted([*module.named_parameters(), *module.named_buffers()], key=lambda item: item[0])


def _fingerprint(module: nn.Module) -> tuple[tuple[int, int, int], ...]:
    """Cheap per-call check that the weights are the ones hashed: identity, storage and in-place version of every
    parameter and buffer (one walk over the submodules, no names: this runs on every `encode_world`).

    PyTorch bumps a tensor's version counter on every in-place write (`copy_`, `load_state_dict`, an optimizer step),
    a replaced tensor has another id, a moved or cast one another storage: an unchanged fingerprint means unchanged
    weights without reading them.
    """
    return tuple(
        (id(t), t.data_ptr(), int(getattr(t, "_version", 0)))
        for sub in module.modules()
        for t in (*sub._parameters.values(), *sub._buffers.values())
        if t is not None
    )


def vae_weights_digest(encoder: nn.Module) -> str:
    """sha256 of every parameter and buffer of `encoder` (names, dtypes, shapes, bytes).

    Computed once per module (about a second for the 127 M-parameter Cosmos VAE) and kept on it; recomputed only when
    the fingerprint shows a tensor was replaced or written in place.
    """
    fingerprint = _fingerprint(encoder)
    cached = encoder.__dict__.get(_WEIGHTS_DIGEST_ATTR)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in _named_tensors(encoder):
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(_tensor_bytes(tensor))
    result = digest.hexdigest()
    encoder.__dict__[_WEIGHTS_DIGEST_ATTR] = (fingerprint, result)
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _rollout_files(cosmos_model_name: str) -> list[str]:
    """For a local Cosmos directory: names, sizes and mtimes of the files a rollout loads besides the VAE.

    The rollout's transformer is identified by its files (hashing 2 B parameters would take seconds per process):
    a directory rebuilt in place gets another identity. A Hub id is identified by its name alone.
    """
    local = Path(cosmos_model_name).expanduser()
    if not local.is_dir():
        return []
    parts = []
    for sub in ("transformer", "scheduler"):
        for path in sorted((local / sub).glob("*")):
            if path.is_file():
                stat = path.stat()
                parts.append(f"{sub}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return parts


def world_latent_identity(encoder: CosmosWorldEncoder, config: TheWorldConfig, num_world_steps: int) -> str:
    """sha256 (hex) of everything a world latent depends on besides the picture.

    encoder: the `CosmosWorldEncoder` (its VAE class, config, weights and dtype); config: the `TheWorldConfig`
    (`cosmos_model_name`; with `num_world_steps` > 0 also the rollout's `world_rollout_steps`,
    `world_rollout_guidance`, `world_rollout_seed`, conditioning prompt and transformer files). At 0 steps the rollout
    settings are left out: they do not change the picture's own latent frame, which stays shared across them.
    """
    from theworld.modeling.rollout import CONDITIONING_PROMPT, cosmos_source

    vae: Any = encoder.vae
    vae_config = dict(vae.config) if hasattr(vae, "config") else {}
    cosmos = cosmos_source(config.cosmos_model_name)
    payload: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "vae_class": type(vae).__name__,
        "vae_config": _jsonable(vae_config),
        "vae_weights": vae_weights_digest(encoder),
        "vae_dtype": str(encoder.vae_dtype),
        "cosmos_model_name": cosmos,
        "num_world_steps": int(num_world_steps),
    }
    if num_world_steps > 0:
        payload["rollout"] = {
            "steps": int(config.world_rollout_steps),
            "guidance": float(config.world_rollout_guidance),
            "seed": int(config.world_rollout_seed),
            "prompt": CONDITIONING_PROMPT,
            "files": _rollout_files(cosmos),
        }
    text = json.dumps(payload, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------------------------


class WorldLatentCache:
    """Per-picture world latents: an LRU of `max_items` rows in memory, plus safetensors files in `cache_dir`.

    `lookup(pixels, identity, compute)` is the whole protocol: it keys every row, serves the hits and calls
    `compute` once, on the misses only (a picture repeated within the batch counts and is computed once).
    """

    def __init__(self, max_items: int, cache_dir: str | os.PathLike[str] | None = None) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"world cache max_items={max_items!r}: expected an integer >= 1 (0 turns the cache off)")
        self.max_items = max_items
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        if self.cache_dir is not None and self.cache_dir.exists() and not self.cache_dir.is_dir():
            raise ValueError(f"world_cache_dir={str(self.cache_dir)!r}: exists and is not a directory")
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._lock = threading.Lock()
        self._disk_write_warned = False
        self.reset_stats()

    # ---- pickling (copy.deepcopy of a model): a lock cannot be copied, a fresh one is equivalent ----
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = f", cache_dir={str(self.cache_dir)!r}" if self.cache_dir is not None else ""
        return f"WorldLatentCache(max_items={self.max_items}{where}, items={len(self)})"

    def __len__(self) -> int:
        return len(self._memory)

    # ---- counters ----
    def reset_stats(self) -> None:
        self._hits = self._misses = self._memory_hits = self._disk_hits = 0
        self._evictions = self._disk_writes = self._disk_errors = 0

    def stats(self) -> dict[str, int | float]:
        """Counters since creation (or `reset_stats`): rows looked up, hits (memory + disk), misses, evictions,
        files written, unreadable/unwritable files, rows in memory, and the hit rate."""
        with self._lock:
            looked_up = self._hits + self._misses
            return {
                "hits": self._hits,
                "misses": self._misses,
                "memory_hits": self._memory_hits,
                "disk_hits": self._disk_hits,
                "evictions": self._evictions,
                "disk_writes": self._disk_writes,
                "disk_errors": self._disk_errors,
                "items": len(self._memory),
                "hit_rate": self._hits / looked_up if looked_up else 0.0,
            }

    # ---- keys ----
    @staticmethod
    def row_keys(pixels: torch.Tensor, identity: str) -> list[str]:
        """One key per row of `pixels` [N, ...]: sha256 of `identity` and the row's dtype, shape and bytes."""
        prefix = hashlib.sha256(f"{CACHE_FORMAT}|{identity}|{pixels.dtype}|{tuple(pixels.shape[1:])}|".encode())
        cpu = pixels.detach().to("cpu")
        keys = []
        for row in cpu:
            digest = prefix.copy()
            digest.update(_tensor_bytes(row))
            keys.append(digest.hexdigest())
        return keys

    # ---- single rows ----
    def get(self, key: str) -> torch.Tensor | None:
        """The cached latents of `key` (memory, else disk) or None; counts a hit or a miss."""
        with self._lock:
            found = self._memory.get(key)
            if found is not None:
                self._memory.move_to_end(key)
                self._hits += 1
                self._memory_hits += 1
                return found
        found = self._read(key) if self.cache_dir is not None else None
        with self._lock:
            if found is None:
                self._misses += 1
                return None
            self._hits += 1
            self._disk_hits += 1
            self._remember(key, found)
            return found

    def put(self, key: str, latents: torch.Tensor) -> None:
        """Keep `latents` (one row, any device) for `key`: in memory, and on disk when a `cache_dir` is set."""
        row = latents.detach().to("cpu", torch.float32, copy=True).contiguous()  # never a view of the caller's
        with self._lock:
            self._remember(key, row)
        if self.cache_dir is not None:
            self._write(key, row)

    def clear(self) -> None:
        """Forget the rows in memory (the files in `cache_dir` stay: they are valid for as long as their keys)."""
        with self._lock:
            self._memory.clear()

    def _remember(self, key: str, row: torch.Tensor) -> None:
        """Insert as most recent and evict the least recent rows beyond `max_items` (caller holds the lock)."""
        self._memory[key] = row
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)
            self._evictions += 1

    # ---- the batch protocol ----
    def lookup(
        self, pixels: torch.Tensor, identity: str, compute: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Latents [N, ...] for world pixels [N, 3, S, S]: hits from the cache, misses from ONE `compute` call.

        `compute(pixels[misses])` must return the latents of exactly those rows; they are stored and the batch is
        assembled in the original row order, on the device of `pixels`.
        """
        keys = self.row_keys(pixels, identity)
        rows: dict[str, torch.Tensor] = {}
        missing: dict[str, int] = {}  # key -> first row index with that picture
        for index, key in enumerate(keys):
            if key in rows or key in missing:
                continue  # the same picture twice in a batch: served by its first occurrence
            found = self.get(key)
            if found is None:
                missing[key] = index
            else:
                rows[key] = found
        if missing:
            indices = list(missing.values())
            computed = compute(pixels[indices])
            if computed.shape[0] != len(indices):
                raise ValueError(f"world cache: compute returned {computed.shape[0]} rows for {len(indices)} pictures")
            for key, latents in zip(missing, computed, strict=True):
                self.put(key, latents)
                rows[key] = latents.detach()
        return torch.stack([rows[key].to(pixels.device, torch.float32) for key in keys])

    # ---- disk ----
    def file_for(self, key: str) -> Path:
        """Where the row of `key` lives on disk (needs a `cache_dir`)."""
        if self.cache_dir is None:
            raise ValueError("world cache: no cache_dir was given")
        return self.cache_dir / key[:2] / f"{key}.safetensors"

    def _read(self, key: str) -> torch.Tensor | None:
        from safetensors import safe_open

        path = self.file_for(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                latents = handle.get_tensor(LATENTS_TENSOR)
        except Exception as error:  # truncated / foreign / unreadable file: recompute it rather than fail training
            self._disk_error(f"unreadable world cache file {path} ({first_line(error)}): encoding the picture again")
            return None
        if metadata.get("key") != key or metadata.get("format") != CACHE_FORMAT:
            self._disk_error(f"world cache file {path} does not hold its key: encoding the picture again")
            return None
        return latents.to(torch.float32)

    def _write(self, key: str, row: torch.Tensor) -> None:
        from safetensors.torch import save_file

        path = self.file_for(key)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({LATENTS_TENSOR: row}, str(partial), metadata={"key": key, "format": CACHE_FORMAT})
            os.replace(partial, path)  # atomic: another process reads the old file, no file, or the whole new one
        except OSError as error:  # a full or read-only disk costs the disk copy only: the memory copy is kept
            partial.unlink(missing_ok=True)
            with self._lock:
                self._disk_errors += 1
                warned, self._disk_write_warned = self._disk_write_warned, True
            if not warned:
                logger.warning("world cache: cannot write %s (%s); keeping latents in memory only", path, error)
            return
        with self._lock:
            self._disk_writes += 1

    def _disk_error(self, message: str) -> None:
        with self._lock:
            self._disk_errors += 1
        logger.warning(message)
