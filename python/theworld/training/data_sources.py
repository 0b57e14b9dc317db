"""`dataset_name` → the training (and evaluation) datasets of a run, built from a `TrainingConfig`.

One builder per dataset name, in a small registry. Every real-data loader gets a `SkipLog` that appends to
`<output_dir>/data_skips.jsonl`, so pictures skipped in DataLoader workers reach the end-of-run report
(`theworld.training.data_callbacks.DataReportCallback`). Loader errors (a missing file or folder, an unreachable
Hub id, a truncated JSON) become one-line `ConfigError`s naming the dataset and the key to fix.

| dataset_name        | train source (first that is set)                      | eval                            |
|---------------------|-------------------------------------------------------|---------------------------------|
| `synthetic_spatial` | generated pictures                                    | generated (`num_eval_samples`)  |
| `spatial_rgpt`      | `train_dataset_path`, else fetched to `download_dir`  | held-out pictures               |
| `vsr`               | `train_dataset_path`, else `hf_dataset_id`, else Hub  | `eval_dataset_path`, else dev   |
| `llava_pretrain`    | `train_dataset_path`, else fetched to `download_dir`  | none                            |
| `datacomp`          | `train_dataset_path`, else `hf_dataset_id`, else Hub  | none                            |
| `hf`                | `hf_dataset_id`, split `hf_dataset_split`             | split `hf_eval_split`           |
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from theworld.data.skips import SkipLog
from theworld.errors import single_line
from theworld.training.config import ConfigError, TrainingConfig

logger = logging.getLogger(__name__)

SKIP_FILE = "data_skips.jsonl"
SYNTHETIC_DEFAULT_TRAIN = 3000
SYNTHETIC_DEFAULT_EVAL = 200
VSR_HUB_ID = "cambridgeltl/vsr_random"
DATACOMP_HUB_ID = "mlfoundations/datacomp_small"
IMAGE_FOLDER_DATASETS = {
    "spatial_rgpt": "the OpenImages pictures, <id>.jpg",
    "vsr": "the COCO 2017 pictures (train2017 + val2017 merged, or both subfolders)",
    "llava_pretrain": "the unpacked LLaVA-Pretrain images.zip (00000/ ... 00659/)",
}
# Records for the answer-accuracy check at evaluation: {"image", "text", "label"} (short answers only).
EvalRecords = list[dict[str, Any]]
Built = tuple[Dataset[Any], Dataset[Any] | None, EvalRecords]


def skip_log(config: TrainingConfig, name: str) -> SkipLog:
    return SkipLog(name, Path(config.output_dir) / SKIP_FILE)


def _image_folder(config: TrainingConfig) -> Path:
    if config.image_folder is None:
        what = IMAGE_FOLDER_DATASETS[config.dataset_name]
        raise ConfigError(f"dataset_name={config.dataset_name!r} needs image_folder ({what})", key="image_folder")
    folder = Path(config.image_folder)
    if not folder.is_dir():
        raise ConfigError(f"image_folder={config.image_folder!r}: no such directory", key="image_folder")
    return folder


def _existing(path: str | None) -> Path | None:
    return Path(path) if path and Path(path).exists() else None


def _short_answer_records(dataset: Any, limit: int = 64) -> EvalRecords:
    """The first `limit` single-turn examples with an answer of at most 3 words, as accuracy records."""
    records: EvalRecords = []
    for index in range(min(len(dataset), 4 * limit)):
        example = dataset[index]
        messages = example["messages"]
        if len(messages) == 2 and example["image"] is not None and len(messages[1]["content"].split()) <= 3:
            records.append({"image": example["image"], "text": messages[0]["content"], "label": messages[1]["content"]})
        if len(records) >= limit:
            break
    return records


# ---- builders ----
def _synthetic(config: TrainingConfig) -> Built:
    from theworld.data.datasets import TheWorldDataset
    from theworld.data.synthetic_spatial import make_synthetic_spatial

    relations = tuple(r.strip() for r in config.synthetic_relations.split(",") if r.strip())
    colors = tuple(c.strip() for c in config.synthetic_colors.split(",")) if config.synthetic_colors else None
    try:
        splits = make_synthetic_spatial(
            num_train=config.num_samples or SYNTHETIC_DEFAULT_TRAIN,
            num_test=SYNTHETIC_DEFAULT_EVAL if config.num_eval_samples is None else config.num_eval_samples,
            image_size=config.world_image_size if config.world_image_size <= 128 else 128,
            seed=config.seed,
            relations=relations,
            fixed_colors=(colors[0], colors[1]) if colors and len(colors) == 2 else colors,  # type: ignore[arg-type]
        )
    except ValueError as error:
        raise ConfigError(f"synthetic_relations/synthetic_colors: {error}") from None
    eval_records = splits["test"]
    eval_dataset = TheWorldDataset(eval_records) if eval_records else None
    return TheWorldDataset(splits["train"]), eval_dataset, eval_records


def _spatial_rgpt(config: TrainingConfig) -> Built:
    from theworld.data.openspatial import OpenSpatialDataset, fetch_openspatial_json

    folder = _image_folder(config)
    json_path = _existing(config.train_dataset_path)
    if json_path is None:
        if config.train_dataset_path:
            logger.info(
                "train_dataset_path %s does not exist: fetching the JSON into download_dir", config.train_dataset_path
            )
        json_path = fetch_openspatial_json(config.download_dir, token=config.hf_token)
    dataset = OpenSpatialDataset(
        json_path,
        folder,
        cache_dir=config.data_cache_dir,
        num_samples=config.num_samples,
        draw_bboxes=config.draw_bboxes,
        skip_log=skip_log(config, "spatial_rgpt"),
    )
    logger.info("%s", dataset.ingest_report())
    if not config.num_eval_samples:
        return dataset, None, []
    train, held = dataset.split_eval(config.num_eval_samples)
    return train, (held if len(held) else None), []


def _vsr(config: TrainingConfig) -> Built:
    from theworld.data.vsr import load_vsr

    folder = _image_folder(config)
    source = config.train_dataset_path or config.hf_dataset_id or VSR_HUB_ID
    common = {"image_folder": folder, "question_template": config.question_template, "cache_dir": config.data_cache_dir}
    train = load_vsr(source, "train", num_samples=config.num_samples, skip_log=skip_log(config, "vsr"), **common)
    if config.num_eval_samples == 0:
        return train, None, []
    eval_source = config.eval_dataset_path or (None if config.train_dataset_path else source)
    if eval_source is None and Path(source).is_file():
        return train, None, []  # one jsonl file and no eval_dataset_path: no eval split to read
    held = load_vsr(
        eval_source or source,
        "dev",
        num_samples=config.num_eval_samples,
        skip_log=skip_log(config, "vsr dev"),
        **common,
    )
    return train, held, _short_answer_records(held)


def _llava_pretrain(config: TrainingConfig) -> Built:
    from theworld.data.llava_pretrain import LlavaPretrainDataset, fetch_llava_pretrain_json

    folder = _image_folder(config)
    json_path = _existing(config.train_dataset_path) or fetch_llava_pretrain_json(config.download_dir, config.hf_token)
    dataset = LlavaPretrainDataset(
        json_path,
        folder,
        num_samples=config.num_samples,
        skip_log=skip_log(config, "llava_pretrain"),
        cache_dir=config.data_cache_dir,
    )
    return dataset, None, []


def _datacomp(config: TrainingConfig) -> Built:
    from theworld.data.datacomp import DataCompDataset, materialize_datacomp

    source = config.train_dataset_path or config.hf_dataset_id or DATACOMP_HUB_ID
    options: dict[str, Any] = {
        "timeout": config.download_timeout,
        "retries": config.download_retries,
        "image_cache_dir": config.image_cache_dir,
        "skip_log": skip_log(config, "datacomp"),
    }
    if config.streaming:
        return DataCompDataset(source, num_samples=config.num_samples, **options), None, []
    return materialize_datacomp(source, num_samples=config.num_samples or 100, **options), None, []


def _hf(config: TrainingConfig) -> Built:
    from theworld.data.datasets import HFDatasetWrapper, HFIterableWrapper
    from theworld.data.hf_source import load_hf_records

    columns: dict[str, Any] = {
        "image_key": config.image_key,
        "text_key": config.text_key,
        "label_key": config.label_key,
        "conversations_key": config.conversations_key,
        "image_folder": config.image_folder,
    }
    dataset_id = str(config.hf_dataset_id)
    train_rows = load_hf_records(
        dataset_id, config.hf_dataset_split, config.streaming, config.num_samples, config.data_cache_dir
    )
    if config.streaming:
        return HFIterableWrapper(train_rows, skip_log=skip_log(config, "hf"), **columns), None, []
    train = HFDatasetWrapper(train_rows, skip_log=skip_log(config, "hf"), **columns)
    if not config.hf_eval_split or config.num_eval_samples == 0:
        return train, None, []
    eval_rows = load_hf_records(dataset_id, config.hf_eval_split, False, config.num_eval_samples, config.data_cache_dir)
    held = HFDatasetWrapper(eval_rows, skip_log=skip_log(config, "hf eval"), **columns)
    return train, held, _short_answer_records(held)


BUILDERS: dict[str, Callable[[TrainingConfig], Built]] = {
    "synthetic_spatial": _synthetic,
    "spatial_rgpt": _spatial_rgpt,
    "vsr": _vsr,
    "llava_pretrain": _llava_pretrain,
    "datacomp": _datacomp,
    "hf": _hf,
}


def build_datasets(config: TrainingConfig) -> Built:
    """(train dataset, eval dataset or None, eval records for answer accuracy) for `config.dataset_name`."""
    builder = BUILDERS.get(config.dataset_name)
    if builder is None:
        raise ConfigError(f"dataset_name={config.dataset_name!r}: expected one of {', '.join(BUILDERS)}")
    try:
        return builder(config)
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError, ConnectionError, OSError) as error:
        message = single_line(error)
        raise ConfigError(f"dataset_name={config.dataset_name!r}: {message}") from None
