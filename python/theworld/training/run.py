"""One training run: config → model, data, Trainer → train (or resume) → final checkpoint in `output_dir`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, set_seed

from theworld.data.collator import TheWorldCollator
from theworld.training.arguments import training_arguments
from theworld.training.build import build_datasets, build_model
from theworld.training.callbacks import DDPConsistencyCallback, FusionHealthCallback
from theworld.training.checkpoints import resolve_resume
from theworld.training.config import TrainingConfig
from theworld.training.data_callbacks import DataReportCallback, RescanImagesCallback
from theworld.training.data_sources import SKIP_FILE
from theworld.training.hub import latest_eval_results, write_model_card
from theworld.training.trainer import TheWorldTrainer

logger = logging.getLogger(__name__)

CONFIG_FILE = "theworld_training_config.json"


class WorldCacheStatsCallback(TrainerCallback):
    """Logs the world-latent cache's counters at the end of every epoch (hit rate ~1 from epoch 2 on)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        cache = self.model.world_cache
        if cache is not None:
            stats = cache.stats()
            logger.info(
                "world-latent cache after epoch %.0f: %d hits, %d misses (hit rate %.2f), %d in memory, %d files "
                "written, %d disk errors",
                state.epoch or 0,
                stats["hits"],
                stats["misses"],
                stats["hit_rate"],
                stats["items"],
                stats["disk_writes"],
                stats["disk_errors"],
            )


def component_learning_rates(config: TrainingConfig) -> dict[str, float]:
    rates = {
        "projector": config.projector_learning_rate,
        "vision": config.vision_learning_rate,
        "language": config.language_learning_rate,
    }
    return {name: rate for name, rate in rates.items() if rate is not None}


def build_trainer(config: TrainingConfig) -> tuple[TheWorldTrainer, list[dict[str, Any]]]:
    """The Trainer for `config` (model, data, callbacks), and the eval records used for answer accuracy."""
    set_seed(config.seed)
    # Data first: a wrong path should fail in a second, not after loading an 8 GB model.
    train_dataset, eval_dataset, eval_records = build_datasets(config)
    model = build_model(config)
    evaluate = eval_dataset is not None and config.num_eval_samples != 0
    trainer = TheWorldTrainer(
        model=model,
        args=training_arguments(config, evaluate=evaluate),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if evaluate else None,
        data_collator=TheWorldCollator(
            model.processor, max_length=config.max_length, blank_siglip=config.blank_siglip_images
        ),
        component_learning_rates=component_learning_rates(config),
    )
    trainer.add_callback(FusionHealthCallback(trainer, eval_records))
    trainer.add_callback(DDPConsistencyCallback(trainer))
    ingest_report = getattr(train_dataset, "ingest_report", None)
    notes = [str(ingest_report())] if callable(ingest_report) else []
    trainer.add_callback(DataReportCallback(Path(config.output_dir) / SKIP_FILE, notes))
    if config.rescan_images and hasattr(train_dataset, "rescan"):
        trainer.add_callback(RescanImagesCallback(train_dataset))
    if model.world_cache is not None:
        trainer.add_callback(WorldCacheStatsCallback(model))
    return trainer, eval_records


def run_training(
    config: TrainingConfig, resume_from_checkpoint: str | None = None, hf_token: str | None = None
) -> Path:
    """Train as configured; returns `output_dir`, which then holds the final (delta) checkpoint."""
    if hf_token:
        # huggingface_hub reads it from the environment; it is never written to TrainingArguments (pickled into
        # every checkpoint), to the saved config, or to a log line.
        os.environ["HF_TOKEN"] = hf_token
    output_dir = Path(config.output_dir)
    resume = resolve_resume(resume_from_checkpoint, output_dir)
    if resume is None and os.environ.get("RANK", "0") == "0":
        # A fresh run: skips counted by an earlier run in this directory are not this run's.
        (output_dir / SKIP_FILE).unlink(missing_ok=True)
    trainer, _ = build_trainer(config)
    if trainer.args.should_save:
        output_dir.mkdir(parents=True, exist_ok=True)
        config.to_json(output_dir / CONFIG_FILE)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if trainer.args.should_save:
        # Before save_model: with push_to_hub, it makes the final push, which uploads this card with the model.
        eval_results = latest_eval_results(trainer.state.log_history)
        try:
            write_model_card(output_dir, config, trainer.model, eval_results, repo_id=trainer.hub_model_id)
        except (OSError, RuntimeError, ValueError) as error:  # a missing card must not cost the final model
            logger.error("model card not written: %s", error)
    trainer.save_model(str(output_dir))
    logger.info("final checkpoint in %s", output_dir)
    return output_dir


def train_main(argv: list[str]) -> int:
    """`theworld train` / scripts/train_hf.py: parse the config and overrides, train, print the output directory."""
    from theworld.training.cli_args import main_error_exit, parse_cli

    @main_error_exit
    def run(args: list[str]) -> int:
        config, extras = parse_cli(args)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        output_dir = run_training(config, extras["resume_from_checkpoint"], extras["hf_token"])
        print(f"done: {output_dir}")
        return 0

    return run(list(argv))
