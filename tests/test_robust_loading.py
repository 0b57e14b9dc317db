"""The shared robustness layer of the real-data loaders: picture files, skip counting, never crashing mid-epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from theworld.data.image_files import DEFAULT_MAX_SIDE, BadImage, open_image_file
from theworld.data.robust import SkippingDataset
from theworld.data.skips import MISSING_IMAGE, BadRecord, SkipLog, format_summary
from theworld.testing.bad_images import BAD_CASE_REASONS, BAD_CASES, GOOD_CASES, LARGE_SIDE, write_image_case


@pytest.mark.parametrize("case", GOOD_CASES)
def test_every_good_picture_becomes_8bit_rgb_within_the_size_bound(tmp_path: Path, case: str) -> None:
    path = write_image_case(tmp_path / f"{case}.img", case)
    with Image.open(path) as raw:
        raw_size = raw.size
    image = open_image_file(path)
    assert image.mode == "RGB"
    assert max(image.size) <= DEFAULT_MAX_SIDE
    if case == "large_jpeg":
        assert raw_size[0] == LARGE_SIDE and image.size[0] == DEFAULT_MAX_SIDE
        assert abs(image.size[0] / image.size[1] - raw_size[0] / raw_size[1]) < 0.01  # aspect kept
    else:
        assert image.size == raw_size
    if case == "gray16_png":  # 16-bit values are scaled, not clipped to white
        assert 20 < sum(image.convert("L").getdata()) / (image.size[0] * image.size[1]) < 235


@pytest.mark.parametrize("case", BAD_CASES)
def test_every_bad_picture_is_a_bad_image_with_its_reason(tmp_path: Path, case: str) -> None:
    path = write_image_case(tmp_path / f"{case}.img", case)
    with pytest.raises(BadImage) as caught:
        open_image_file(path)
    assert caught.value.reason == BAD_CASE_REASONS[case]
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_picture_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(BadImage, match=r"nope\.jpg: no such image file") as caught:
        open_image_file(tmp_path / "nope.jpg")
    assert caught.value.reason == MISSING_IMAGE


def test_pil_bomb_limit_is_restored(tmp_path: Path) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(BadImage):
        open_image_file(write_image_case(tmp_path / "bomb.png", "bomb_png"))
    assert before == Image.MAX_IMAGE_PIXELS


def test_skip_log_counts_across_processes_through_its_file(tmp_path: Path) -> None:
    path = tmp_path / "skips.jsonl"
    first, second = SkipLog("vsr", path), SkipLog("vsr", path)  # two DataLoader workers
    first.skip(MISSING_IMAGE, "record 1")
    second.skip(MISSING_IMAGE, "record 2")
    second.skip("corrupt image", "record 3", "truncated")
    with path.open("a") as handle:
        handle.write('{"loader": "vsr", "reas')  # a line cut by a killed worker is ignored
    counts = SkipLog.read(path)["vsr"]
    assert counts == {MISSING_IMAGE: 2, "corrupt image": 1}
    assert (
        format_summary("vsr", counts, served=10)
        == "vsr: skipped 3 record(s) (served 10): missing image 2, corrupt image 1"
    )
    assert SkipLog("x").summary() == "x: no records skipped"


class _Records(SkippingDataset):
    """Record i is bad when i is in `bad`."""

    def __init__(self, size: int, bad: set[int]) -> None:
        super().__init__(SkipLog("toy"))
        self.size, self.bad, self.loads = size, bad, 0

    def __len__(self) -> int:
        return self.size

    def load_example(self, index: int) -> dict[str, Any]:
        self.loads += 1
        if index in self.bad:
            raise BadRecord(MISSING_IMAGE, f"record {index}: gone")
        return {"index": index}


def test_a_bad_record_is_replaced_by_the_next_good_one_and_counted_once() -> None:
    data = _Records(6, bad={1, 2, 5})
    served = [data[i]["index"] for i in range(6)]
    assert served == [0, 3, 3, 3, 4, 0]  # 5 wraps around to 0
    assert data.skip_log.counts == {MISSING_IMAGE: 3}
    loads = data.loads
    assert [data[i]["index"] for i in range(6)] == served  # second epoch: same answers, bad records not retried
    assert data.loads - loads == 6 and data.skip_log.total == 3  # one load per item: no bad record retried


def test_all_bad_raises_one_line_naming_the_loader_and_reasons() -> None:
    data = _Records(5, bad=set(range(5)))
    with pytest.raises(RuntimeError, match=r"^toy: 5 records in a row from index 0 .*missing image 5") as caught:
        data[0]
    assert "\n" not in str(caught.value)
