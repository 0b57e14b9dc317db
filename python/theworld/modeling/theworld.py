"""`TheWorld`: Gemma 3 (SigLIP + Gemma LM) with Cosmos-Predict2 world tokens spliced in front of every image.

Token flow (see docs/architecture/token-flow.md for shapes): image → [world] RGB → resize → [-1, 1] → Wan VAE posterior
mean → normalized latents → + temporal embedding → projector (ends in an RMS norm at the text-embedding scale) →
scattered at the `<world_soft_token>` placeholders between `<start_of_world>` and `<end_of_world>`; [SigLIP] exactly
as Gemma 3. With `enable_world=False`, or with no world tokens in the input, the parent's forward runs unchanged, so
the model is bit-exact with `Gemma3ForConditionalGeneration`.

With `num_world_steps` = 4k > 0 (config or per call), a Cosmos-Predict2 Video2World rollout
(`theworld.modeling.rollout.CosmosRollout`, loaded lazily from `cosmos_model_name` on first use, sharing the VAE)
predicts k more latent frames; latent frame t gets temporal embedding t, so the world block holds (1 + k) x
tokens_per_frame tokens. The rollout is never part of the module tree: it is not saved, trained or moved by `.to()`
(it follows its inputs' device).

`model.enable_world_cache(max_items, cache_dir)` keeps the world latents (VAE + rollout output, before the trainable
projector) per picture, so later epochs skip the frozen world model (`theworld.modeling.latent_cache`); like the
rollout it lives outside the module tree and is never saved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Gemma3ForConditionalGeneration
from transformers import initialization as init
from transformers.models.gemma3.modeling_gemma3 import Gemma3CausalLMOutputWithPast

from theworld.modeling.configuration_theworld import TheWorldConfig
from theworld.modeling.cosmos_encoder import CosmosWorldEncoder
from theworld.modeling.custom_checkpoint import CustomCheckpointMixin
from theworld.modeling.freezing import FreezeMixin
from theworld.modeling.fusion import (
    check_world_placeholders,
    scatter_world_embeddings,
    world_placeholder_mask,
    world_token_type_ids,
)
from theworld.modeling.generation import ConvenienceGenerationMixin
from theworld.modeling.latent_cache import WorldLatentCache, world_latent_identity
from theworld.modeling.loading import WorldLoadingMixin
from theworld.modeling.rollout import CosmosRollout, cosmos_source, validate_world_steps
from theworld.modeling.world_projector import WorldProjector, WorldTokenEmbedding

logger = logging.getLogger(__name__)


@dataclass
class TheWorldCausalLMOutputWithPast(Gemma3CausalLMOutputWithPast):
    r"""world_hidden_states: projected world embeddings [num_images, num_world_tokens, hidden] when computed."""

    world_hidden_states: torch.Tensor | None = None


class TheWorld(
    WorldLoadingMixin, FreezeMixin, CustomCheckpointMixin, ConvenienceGenerationMixin, Gemma3ForConditionalGeneration
):
    config_class = TheWorldConfig
    config: TheWorldConfig  # pyright: ignore[reportIncompatibleVariableOverride]  (narrowed, as transformers does)

    def __init__(self, config: TheWorldConfig) -> None:
        super().__init__(config)
        # transformers picks the loss from the class name; "TheWorld" matches none, so use Gemma 3's own.
        self.loss_type = "ForConditionalGeneration"
        # World modules sit at the top level (not under `self.model`, whose init hook would re-initialize them).
        if config.enable_world:
            self.world_projector = WorldProjector(config)
            self.world_token_embedding = WorldTokenEmbedding(config)
        self.processor: Any = None  # set by from_pretrained; used by the `generate(image, "question")` convenience
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: torch.nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.get_text_config().initializer_range
        if isinstance(module, WorldProjector):
            init.normal_(module.temporal_embedding, mean=0.0, std=0.1)
            # Random Gemma: text embeddings have RMS ~ std * sqrt(hidden) after Gemma's embed scale. A converted
            # checkpoint re-calibrates this from its real embedding matrix (see loading.calibrate_world_scale).
            init.constant_(module.output_scale, std * self.config.get_text_config().hidden_size ** 0.5)
        elif isinstance(module, WorldTokenEmbedding):
            init.normal_(module.weight, mean=0.0, std=std)

    # ---- world encoding ----
    @property
    def world_encoder(self) -> CosmosWorldEncoder | None:
        """The Cosmos VAE wrapper: a submodule when trainable; kept out of the module tree if frozen."""
        encoder = self._modules.get("cosmos_encoder") or self.__dict__.get("_external_world_encoder")
        return encoder if isinstance(encoder, CosmosWorldEncoder) else None

    def set_world_encoder(self, encoder: CosmosWorldEncoder | None, trainable: bool = False) -> None:
        self._modules.pop("cosmos_encoder", None)
        self.__dict__.pop("_external_world_encoder", None)
        if encoder is None:
            return
        encoder.requires_grad_(trainable)
        if trainable:
            self.cosmos_encoder = encoder
        else:
            self.__dict__["_external_world_encoder"] = encoder.eval()

    def resolve_world_steps(self, num_world_steps: Any = None) -> int:
        """The steps of a call: `num_world_steps`, else the config's; a one-line `ValueError` if not in
        {0, 4, 8, ...} up to `max_world_steps`."""
        steps = self.config.num_world_steps if num_world_steps is None else num_world_steps
        return validate_world_steps(steps, self.config.max_world_steps)

    def world_rollout(self) -> CosmosRollout:
        """The Cosmos Video2World rollout, loaded on first use from `config.cosmos_model_name`.

        It shares the attached VAE (no second copy) and keeps no T5 (see `theworld.modeling.rollout`); it lives
        outside the module tree, so `save_pretrained` never writes it and `state_dict()` never holds it.
        """
        encoder = self.world_encoder
        if encoder is None:
            raise ValueError(
                "world rollout: no Cosmos VAE is attached; load the model with TheWorld.from_pretrained "
                "(it loads cosmos_model_name/vae)"
            )
        rollout = self.__dict__.get("_world_rollout")
        name = cosmos_source(self.config.cosmos_model_name)
        if not isinstance(rollout, CosmosRollout) or rollout.source != name:  # first use, or cosmos_model_name changed
            hub_kwargs = dict(self.__dict__.get("_cosmos_hub_kwargs") or {})
            rollout = CosmosRollout.from_pretrained(name, encoder=encoder, **hub_kwargs)
            self.__dict__["_world_rollout"] = rollout
        elif rollout.encoder is not encoder:
            rollout.use_encoder(encoder)  # the VAE was re-attached: keep sharing the current one
        return rollout

    def encode_world(self, world_pixel_values: torch.Tensor, num_world_steps: int | None = None) -> torch.Tensor:
        """World pixels [N, 3, S, S] in [-1, 1] → world embeddings [N, num_world_tokens(steps), hidden].

        steps = 0: the VAE encoding of the picture (1 latent frame). steps = 4k: that frame plus k latent frames
        predicted by the Cosmos rollout (seed `world_rollout_seed`, `world_rollout_steps` denoising steps,
        guidance `world_rollout_guidance`). Frame 0 carries gradients when the VAE is trainable; predicted frames
        never do (the diffusion runs without gradients).
        """
        if not self.config.enable_world:
            raise ValueError("encode_world: this model was built with enable_world=False")
        steps = self.resolve_world_steps(num_world_steps)
        encoder = self.world_encoder
        if encoder is None:
            raise ValueError(
                "encode_world: no Cosmos VAE is attached; load the model with TheWorld.from_pretrained "
                "(it loads cosmos_model_name/vae)"
            )
        cache = self.world_cache
        if cache is not None and not any(p.requires_grad for p in encoder.parameters()):
            # [Contract] only a frozen VAE's latents are cached: a trainable one changes them at every step.
            identity = world_latent_identity(encoder, self.config, steps)
            latents = cache.lookup(
                world_pixel_values, identity, lambda pixels: self.world_latents(encoder, pixels, steps)
            )
        else:
            latents = self.world_latents(encoder, world_pixel_values, steps)
        return self.world_projector(latents)  # [N, T * tokens_per_frame, D], temporal embedding t on frame t

    def world_latents(self, encoder: CosmosWorldEncoder, world_pixel_values: torch.Tensor, steps: int) -> torch.Tensor:
        """World pixels [N, 3, S, S] → normalized latents [N, 16, 1 + steps // 4, S/8, S/8] (no cache, no projector).

        Frame 0 carries gradients when the VAE is trainable (and grad mode is on); predicted frames never do.
        """
        vae_trainable = any(p.requires_grad for p in encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and vae_trainable):
            latents = encoder(world_pixel_values)  # [N, 16, 1, h, w]
        if steps > 0:
            config = self.config
            predicted = self.world_rollout().rollout(
                world_pixel_values,
                steps,
                seed=config.world_rollout_seed,
                num_inference_steps=config.world_rollout_steps,
                guidance_scale=config.world_rollout_guidance,
                first_frame=latents.detach(),
                max_world_steps=config.max_world_steps,
            )  # [N, 16, 1 + steps // 4, h, w]; frame 0 == latents
            latents = torch.cat([latents, predicted[:, :, 1:].to(latents)], dim=2)
        return latents

    # ---- world-latent cache ----
    @property
    def world_cache(self) -> WorldLatentCache | None:
        """The world-latent cache set by `enable_world_cache`, or None (off)."""
        cache = self.__dict__.get("_world_latent_cache")
        return cache if isinstance(cache, WorldLatentCache) else None

    def enable_world_cache(
        self, max_items: int, cache_dir: str | os.PathLike[str] | None = None
    ) -> WorldLatentCache | None:
        """Cache world latents per picture: up to `max_items` rows in memory (LRU), and in `cache_dir` if given.

        `encode_world` then computes the VAE (and rollout) only for pictures it has not seen with the same frozen
        world model and settings; the projector always runs. `max_items=0` turns the cache off. Used only while the
        VAE is frozen; never saved. Returns the cache (`.stats()` has its hit/miss counters).
        """
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
            raise ValueError(f"world_cache_size={max_items!r}: expected an integer >= 0 (0 = no cache)")
        if max_items == 0:
            self.disable_world_cache()
            return None
        if not self.config.enable_world:
            raise ValueError("enable_world_cache: this model was built with enable_world=False (no world latents)")
        cache = WorldLatentCache(max_items, cache_dir)
        self.__dict__["_world_latent_cache"] = cache  # outside the module tree: not saved, not moved, not trained
        encoder = self.world_encoder
        if encoder is not None and any(p.requires_grad for p in encoder.parameters()):
            logger.warning("world-latent cache enabled, but the Cosmos VAE trains: it is bypassed until it is frozen")
        return cache

    def disable_world_cache(self) -> None:
        """Drop the world-latent cache (files in its `cache_dir` stay)."""
        self.__dict__.pop("_world_latent_cache", None)

    def _world_ids(self) -> list[int]:
        return self.world_token_embedding.token_ids(self.config)

    # ---- forward ----
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, Any] | None = None,
        world_pixel_values: torch.Tensor | None = None,
        world_embeds: torch.Tensor | None = None,
        num_world_steps: int | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...] | TheWorldCausalLMOutputWithPast:
        r"""Gemma 3's forward plus:

        world_pixel_values (`torch.Tensor` [num_images, 3, S, S] in [-1, 1]): pictures for the world model (from the
            processor); used only where `input_ids` hold world placeholders, i.e. at prefill.
        world_embeds (`torch.Tensor` [num_images, N, hidden]): precomputed world embeddings (skips the VAE).
        num_world_steps (`int`): per-call override of `config.num_world_steps` (0, 4, 8, ... ≤ `max_world_steps`);
            the processor must have been called with the same value (it sets the number of world placeholders).
        """
        common: dict[str, Any] = {
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "past_key_values": past_key_values,
            "labels": labels,
            "use_cache": use_cache,
            "logits_to_keep": logits_to_keep,
            **kwargs,
        }
        if num_world_steps is not None:
            num_world_steps = self.resolve_world_steps(num_world_steps)
        world_ids: list[int] = []
        world_positions: torch.Tensor | None = None  # [B, L]: any of the three world tokens
        if input_ids is not None and self.config.enable_world:
            world_ids = self._world_ids()
            world_positions = torch.isin(input_ids, input_ids.new_tensor(world_ids))
        if input_ids is None or world_positions is None or not bool(world_positions.any()):
            # No world tokens in this step (Gemma-only baseline, text-only input, or a decode step): Gemma 3 as is.
            outputs = super().forward(
                input_ids=input_ids,
                pixel_values=pixel_values,
                token_type_ids=token_type_ids,
                inputs_embeds=inputs_embeds,
                mm_encoder_outputs=mm_encoder_outputs,
                **common,
            )
            return outputs if isinstance(outputs, tuple) else TheWorldCausalLMOutputWithPast(**outputs)
        if inputs_embeds is not None:
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")

        embeds, world = self._fuse_world(
            input_ids,
            world_ids,
            world_positions,
            pixel_values,
            mm_encoder_outputs,
            world_pixel_values,
            world_embeds,
            num_world_steps,
        )
        if token_type_ids is None:
            token_type_ids = world_token_type_ids(input_ids, self.config.image_token_id, world_ids[2])  # type: ignore[assignment]
        outputs = super().forward(input_ids=None, inputs_embeds=embeds, token_type_ids=token_type_ids, **common)
        if isinstance(outputs, tuple):
            return outputs
        return TheWorldCausalLMOutputWithPast(**outputs, world_hidden_states=world)

    def _fuse_world(
        self,
        input_ids: torch.LongTensor,
        world_ids: list[int],
        world_positions: torch.Tensor,
        pixel_values: torch.Tensor | None,
        mm_encoder_outputs: dict[str, Any] | None,
        world_pixel_values: torch.Tensor | None,
        world_embeds: torch.Tensor | None,
        num_world_steps: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`input_ids` with world tokens → (input embeddings [B, L, D] with the image features and world embeddings in
        place, the world embeddings used or None). One [B, L, D] tensor: the lookup's, then written in place."""
        embed = self.get_input_embeddings()
        embeds = embed(input_ids)  # [B, L, D], already multiplied by sqrt(hidden)
        if embeds.is_leaf and embeds.requires_grad:
            # Gradient checkpointing's input hook (enable_input_require_grads) makes the lookup a leaf that requires
            # grad, and autograd forbids writing into such a tensor: write into a copy.
            embeds = embeds.clone()
        scale = torch.as_tensor(getattr(embed, "embed_scale", 1.0))  # Gemma's sqrt(hidden) text-embedding scale
        embeds = self.world_token_embedding.overwrite(input_ids, embeds, world_ids, world_positions, scale)
        # Same as Gemma3Model.forward: generate() hands over precomputed SigLIP outputs as `mm_encoder_outputs`.
        image = (mm_encoder_outputs or {}).get("image")
        if image is None and pixel_values is not None:
            image = self.model.get_image_features(pixel_values)
        if image is not None:
            image_features = image.pooler_output.to(embeds.device, embeds.dtype)
            image_mask = self.model.get_placeholder_mask(input_ids, inputs_embeds=embeds, image_features=image_features)
            embeds = embeds.masked_scatter_(image_mask, image_features)  # in place: `embeds` is ours

        placeholders = world_placeholder_mask(input_ids, world_ids[2])
        world = world_embeds
        if world is None and bool(placeholders.any()):
            if world_pixel_values is None:
                raise ValueError(
                    f"input_ids hold {int(placeholders.sum())} world placeholder tokens but neither "
                    "world_pixel_values nor world_embeds was given"
                )
            check_world_placeholders(
                placeholders, world_pixel_values.shape[0], self.resolve_world_steps(num_world_steps), self.config
            )
            world = self.encode_world(world_pixel_values, num_world_steps)
        if world is not None:
            embeds = scatter_world_embeddings(embeds, placeholders, world)
        return embeds, world

    # ---- generation ----
    @torch.no_grad()
    def answer(
        self, image: Any, prompt: str, max_new_tokens: int = 32, num_world_steps: int | None = None, **kwargs: Any
    ) -> str:
        """`generate(image, "question", num_world_steps=k)`: the processor inserts the placeholders of k steps too."""
        if num_world_steps is None:
            return super().answer(image, prompt, max_new_tokens=max_new_tokens, **kwargs)
        steps = self.resolve_world_steps(num_world_steps)
        if self.processor is None:
            raise ValueError("generate(image, prompt): no processor attached; load the model with from_pretrained")
        with self.processor.using_world_steps(steps):
            return super().answer(image, prompt, max_new_tokens=max_new_tokens, num_world_steps=steps, **kwargs)

    def never_generated_token_ids(self) -> list[int]:
        """The world special tokens, suppressed by `generate`: never answer text, and a generated
        `<world_soft_token>` would be read as a world placeholder at the next decode step, which has no world pixels."""
        return self._world_ids() if self.config.enable_world else []

    def prepare_inputs_for_generation(
        self, input_ids: torch.Tensor, use_cache: bool = True, is_first_iteration: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, use_cache=use_cache, is_first_iteration=is_first_iteration, **kwargs
        )
        if not is_first_iteration and use_cache:
            # World embeddings are computed once at prefill; later tokens see them through the KV cache.
            model_inputs.pop("world_pixel_values", None)
            model_inputs.pop("world_embeds", None)
        return model_inputs

    # ---- saving ----
    def save_pretrained(
        self, save_directory: str | os.PathLike[str], *args: Any, delta: bool = False, **kwargs: Any
    ) -> None:
        """Save safetensors weights, config and (when attached) the processor.

        The frozen VAE is never written (the config records `cosmos_model_name`); a trainable VAE goes to
        `world_vae/`. `delta=True` writes only what differs from `config.world_base_model` (world modules and the
        unfrozen parts), so a projection-only checkpoint of gemma-3-4b-it is megabytes; `from_pretrained` rebuilds it.
        """
        from theworld.modeling.loading import checkpoint_state_dict

        directory = Path(save_directory)
        state_dict = kwargs.pop("state_dict", None)
        state_dict = checkpoint_state_dict(self, state_dict, delta=delta)
        previous_format = self.config.world_checkpoint_format
        self.config.world_checkpoint_format = "delta" if delta else "full"
        if delta:
            # Our own loader reads delta files: keep the in-memory parameter names on disk.
            kwargs["save_original_format"] = False
        try:
            super().save_pretrained(directory, *args, state_dict=state_dict, **kwargs)
        finally:
            self.config.world_checkpoint_format = previous_format
        is_main = kwargs.get("is_main_process", args[0] if args else True)
        if not is_main:
            return
        encoder = self.world_encoder
        if encoder is not None and not self.config.freeze_cosmos_vae:
            encoder.vae.save_pretrained(directory / "world_vae")  # type: ignore[operator]
        if self.processor is not None:
            self.processor.save_pretrained(directory)
