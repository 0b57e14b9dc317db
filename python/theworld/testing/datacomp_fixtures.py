"""DataComp metadata files for the loader tests: the real parquet schema, URLs pointing at `LocalHTTPServer`.

`write_datacomp_parquet(path, rows)` writes rows with DataComp's exact columns and Arrow types (as in
`mlfoundations/datacomp_small`): uid (32 hex), url, text, original_width/height (int64), CLIP B/32 and L/14
similarity scores (float32), face_bboxes (list of [x0, y0, x1, y1] in [0, 1], float64), sha256 (hex of the bytes).

`write_datacomp_fixture(out_dir, server, cases)` builds one row per case, serves its picture (or failure) on the
server and returns what a correct loader must do with it: which captions it serves, which skip reasons it counts.
Cases: `bad_images.GOOD_CASES` and `BAD_CASES` by name (served or skipped as decoded from the bytes), plus "flaky"
(a 500, then the picture), "missing" (404), "slow" (answers after `slow_delay` s), "html" (a web page), "aborted"
(the body is always cut short), "sha_mismatch" (bytes other than the metadata's sha256), "empty_caption".
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from theworld.data.datacomp import HTML_PAGE
from theworld.data.http_fetch import INCOMPLETE_READ, SHA256_MISMATCH, TIMEOUT
from theworld.data.skips import EMPTY_CONVERSATION
from theworld.testing.bad_images import BAD_CASE_REASONS, BAD_CASES, GOOD_CASES, write_image_case
from theworld.testing.http_server import LocalHTTPServer, Route

DATACOMP_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("clip_b32_similarity_score", pa.float32()),
        ("clip_l14_similarity_score", pa.float32()),
        ("face_bboxes", pa.list_(pa.list_(pa.float64()))),
        ("sha256", pa.string()),
    ]
)
# Case → skip reason (None: served). Image cases decode (or fail) as `bad_images` says.
SERVER_CASES: dict[str, str | None] = {
    "flaky": None,
    "missing": "http 404",
    "slow": TIMEOUT,
    "html": HTML_PAGE,
    "aborted": INCOMPLETE_READ,
    "sha_mismatch": SHA256_MISMATCH,
    "empty_caption": EMPTY_CONVERSATION,
}
CASES: dict[str, str | None] = {
    **dict.fromkeys(GOOD_CASES),
    **{case: BAD_CASE_REASONS[case] for case in BAD_CASES},
    "not_an_image": HTML_PAGE,  # bad_images' "not an image" is an HTML error page, which the loader names as such
    **SERVER_CASES,
}


def write_datacomp_parquet(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write `rows` (dicts with every DataComp column) as one parquet file with DataComp's schema."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([dict(row) for row in rows], schema=DATACOMP_SCHEMA)
    pq.write_table(table, file)
    return file


@dataclass
class DataCompFixture:
    """A written metadata file and what a correct loader does with it."""

    parquet: Path
    rows: list[dict[str, Any]]
    paths: dict[str, str]  # uid → the server path of its picture (for request counts)
    served_captions: set[str] = field(default_factory=set)
    expected_skips: Counter[str] = field(default_factory=Counter)


def _picture_bytes(case: str, seed: int, scratch: Path) -> bytes:
    file = write_image_case(scratch / f"{seed}-{case}", case, seed=seed)
    data = file.read_bytes()
    file.unlink()
    return data


def write_datacomp_fixture(
    out_dir: str | os.PathLike[str],
    server: LocalHTTPServer,
    cases: Sequence[str],
    slow_delay: float = 10.0,
    name: str = "metadata.parquet",
    first_seed: int = 0,
) -> DataCompFixture:
    """One DataComp row per case in `cases` (repeats allowed), served by `server`; see the module docstring."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    fixture = DataCompFixture(parquet=folder / name, rows=[], paths={})
    for number, case in enumerate(cases):
        if case not in CASES:
            raise ValueError(f"unknown DataComp fixture case {case!r}; expected one of {sorted(CASES)}")
        seed = first_seed + number
        uid = hashlib.md5(f"datacomp-fixture-{seed}".encode()).hexdigest()  # 32 hex, like DataComp's uids
        image_case = case if case in GOOD_CASES or case in BAD_CASES else "rgb_jpeg"
        body = _picture_bytes(image_case, seed, folder)
        sha = hashlib.sha256(body).hexdigest()
        path = f"images/{uid}.img"
        if case == "flaky":
            server.add(path, Route(body=body, failures=1))
        elif case == "missing":
            server.add(path, Route(body=b"not found", status=404, content_type="text/plain"))
        elif case == "slow":
            server.add(path, Route(body=body, delay=slow_delay))
        elif case == "html":
            server.add_html(path)  # the metadata keeps the sha256 of the picture that used to be there
        elif case == "aborted":
            server.add(path, Route(body=body, failures=1_000_000, failure="abort"))
        elif case == "sha_mismatch":
            server.add_file(path, _picture_bytes("rgb_jpeg", seed + 10_000, folder))
        else:
            server.add_file(path, body)
        caption = "" if case == "empty_caption" else f"picture {seed}: a {case.replace('_', ' ')} <image>"
        width, height = _size(body)
        fixture.rows.append(
            {
                "uid": uid,
                "url": server.url(path),
                "text": caption,
                "original_width": width,
                "original_height": height,
                "clip_b32_similarity_score": 0.2 + 0.01 * (seed % 10),
                "clip_l14_similarity_score": 0.25 + 0.01 * (seed % 7),
                "face_bboxes": [[0.1, 0.2, 0.3, 0.4]] if seed % 3 == 0 else [],
                "sha256": sha,
            }
        )
        fixture.paths[uid] = path
        reason = CASES[case]
        if reason is None:
            fixture.served_captions.add(caption.replace("<image>", "").strip())
        else:
            fixture.expected_skips[reason] += 1
    write_datacomp_parquet(fixture.parquet, fixture.rows)
    return fixture


def _size(body: bytes) -> tuple[int, int]:
    """The picture's declared size (0 x 0 for bytes that are no picture), like DataComp's original_width/height."""
    try:
        with Image.open(io.BytesIO(body)) as opened:
            return opened.size
    except Exception:  # any unreadable body (bomb, HTML, empty) just has no size
        return 0, 0
