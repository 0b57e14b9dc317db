"""LLaVA-Pretrain (558k LAION/CC/SBU pictures with BLIP captions) as picture → caption examples.

The real data (`liuhaotian/LLaVA-Pretrain`) is one JSON array, `blip_laion_cc_sbu_558k.json`, of records::

    {"id": "004539375", "image": "00453/004539375.jpg",
     "conversations": [{"from": "human", "value": "Render a clear and concise summary of the photo.\\n<image>"},
                       {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress topper"}]}

plus `images.zip`, unpacked into `image_folder` (`00000/` ... `00659/`); `image` is relative to it. The `<image>`
marker comes before or after the instruction. LLaVA's pretraining recipe (feature alignment) trains on picture →
caption: the instruction is dropped and the loss falls on the caption only. `keep_instruction=True` keeps it.

[Contract] `LlavaPretrainDataset` serves `{"image": RGB PIL, "messages": [{"role": "user", "content": ""},
{"role": "assistant", "content": caption}]}` (the user turn is the picture alone; with `keep_instruction` its text is
the instruction without `<image>`). A record with no picture, a missing or unreadable picture, an empty conversation
or wrongly typed fields is skipped and counted in `skip_log` by reason. The JSON is read once with
`datasets.load_dataset("json")` into an Arrow cache that later runs memory-map.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import datasets
from huggingface_hub import hf_hub_download

from theworld.data.datasets import normalize_record
from theworld.data.hf_source import load_json_file
from theworld.data.image_files import open_image_file
from theworld.data.robust import Example, SkippingDataset
from theworld.data.skips import BAD_FIELD, EMPTY_CONVERSATION, BadRecord, SkipLog

logger = logging.getLogger(__name__)

LLAVA_PRETRAIN_REPO = "liuhaotian/LLaVA-Pretrain"
LLAVA_PRETRAIN_FILE = "blip_laion_cc_sbu_558k.json"

# `image` and `conversations` are type-checked per record, so they are Json (any value loads); `id` is text.
LLAVA_PRETRAIN_FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "image": datasets.Json(), "conversations": datasets.Json()}
)


def fetch_llava_pretrain_json(
    download_dir: str | os.PathLike[str], token: str | None = None, endpoint: str | None = None
) -> Path:
    """`blip_laion_cc_sbu_558k.json` in `download_dir`, downloaded from the Hub dataset when it is not there yet.

    `endpoint` is a Hub mirror (None: `HF_ENDPOINT` or huggingface.co). A failed download (offline, no access) is one
    line naming the repo, the file and the config key that points at a local copy.
    """
    folder = Path(download_dir)
    local = folder / LLAVA_PRETRAIN_FILE
    if local.is_file():  # downloads land under a temporary name first, so a file here is complete
        return local
    try:
        path = hf_hub_download(
            LLAVA_PRETRAIN_REPO,
            LLAVA_PRETRAIN_FILE,
            repo_type="dataset",
            local_dir=folder,
            token=token,
            endpoint=endpoint,
        )
    except OSError as error:  # huggingface_hub's HTTP, offline and not-found errors are all OSErrors
        reason = " ".join(str(error).split())[:200]
        raise FileNotFoundError(
            f"cannot download {LLAVA_PRETRAIN_FILE} from the Hub dataset {LLAVA_PRETRAIN_REPO} into {folder} "
            f"({type(error).__name__}: {reason}); download it yourself and set train_dataset_path to the file"
        ) from None
    logger.info("downloaded %s from %s to %s", LLAVA_PRETRAIN_FILE, LLAVA_PRETRAIN_REPO, path)
    return Path(str(path))


class LlavaPretrainDataset(SkippingDataset):
    """LLaVA-Pretrain records served as picture → caption examples; see the module docstring."""

    def __init__(
        self,
        json_path: str | os.PathLike[str],
        image_folder: str | os.PathLike[str],
        num_samples: int | None = None,
        keep_instruction: bool = False,
        skip_log: SkipLog | None = None,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(skip_log if skip_log is not None else SkipLog("llava_pretrain"))
        if num_samples is not None and num_samples <= 0:
            raise ValueError(f"num_samples must be positive or None, got {num_samples}")
        self.image_folder = Path(image_folder)
        if not self.image_folder.is_dir():
            raise FileNotFoundError(f"image_folder={str(self.image_folder)!r}: no such directory")
        records = load_json_file(json_path, LLAVA_PRETRAIN_FEATURES, cache_dir=cache_dir)
        if num_samples is not None:
            records = records.select(range(min(num_samples, len(records))))
        self.records = records
        self.keep_instruction = keep_instruction

    def __len__(self) -> int:
        return len(self.records)

    def load_example(self, index: int) -> Example:
        row = self.records[int(index)]
        image = row.get("image")
        if not isinstance(image, str) or not image.strip():
            raise BadRecord(BAD_FIELD, f"record {index}: field 'image' must be a relative file path, got {image!r}")
        conversations = row.get("conversations")
        if conversations is None:
            raise BadRecord(EMPTY_CONVERSATION, f"record {index}: no 'conversations' field")
        picture = open_image_file(self.image_folder / image.strip())
        example = normalize_record({"image": picture, "conversations": conversations}, index, allow_empty_prompt=True)
        if not self.keep_instruction:  # pretraining: the picture alone is the prompt
            example["messages"][0]["content"] = ""
        return example

    def describe(self, index: int) -> str:
        row = self.records[int(index)]
        return f"record {index} (id {row.get('id')}, image {row.get('image')})"
