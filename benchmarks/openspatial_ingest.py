"""Benchmark: OpenSpatialDataset ingest (ijson → Arrow cache) against the naive `json.load`, and the cache hit.

    python benchmarks/openspatial_ingest.py [--records 200000] [--picture-fraction 0.5] [--rle-chars 200 1200]

Writes N records in the real `result_10_depth_convs.json` format (multi-turn, `<mask> <depth>`, COCO RLE strings of
a realistic length) into a temporary folder, plus EMPTY picture files `<id>.jpg` for a fraction of the ids: every
measured step only looks at file names (no picture is decoded), so empty files are enough. Then it runs, each in a
fresh subprocess so peak RSS is per run:

  (a) naive: `json.load` of the whole file + a Python list of the records whose picture exists;
  (b) ours, first start: `OpenSpatialDataset(...)` with an empty cache (streams the JSON into the Arrow cache);
  (c) ours, second start: the same call again (cache hit: no JSON parse).

Every child first imports `theworld.data.openspatial` (as a training process has), then measures. Peak RSS is read
from /proc/self/status (VmHWM, reset after the imports where the kernel allows it); "loader RSS" is that peak minus
the RSS right after the imports, i.e. the memory the loading itself takes. Goals: loader RSS ours/naive ≤ 0.2 and
second start ≥ 50× faster than the first ingest. Prints a table and PASS/FAIL per goal; exits 1 if a goal fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RSS_GOAL = 0.2
SPEEDUP_GOAL = 50.0


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run_child(mode: str, json_path: str, image_folder: str, cache_dir: str) -> dict[str, Any]:
    """Runs inside the subprocess: one measured load, returned as a dict (printed as JSON by `main`)."""
    import theworld.data.openspatial as openspatial  # the imports every mode shares
    from theworld.data.image_index import scan_image_folder

    base = _status_kib("VmRSS")
    with contextlib.suppress(OSError):  # "5" resets the peak RSS to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    result: dict[str, Any] = {"mode": mode}
    if mode == "naive":
        with open(json_path, encoding="utf-8") as handle:
            records = json.load(handle)
        images = scan_image_folder(image_folder, progress=False)
        kept = [record for record in records if record["filename"] in images]
        result.update(records=len(records), served=len(kept))
    else:
        dataset = openspatial.OpenSpatialDataset(json_path, image_folder, cache_dir=cache_dir)
        result.update(
            records=dataset.stats.records,
            served=len(dataset),
            cache_hit=dataset.stats.cache_hit,
            parses=openspatial.parse_count,
        )
    result.update(wall=time.perf_counter() - start, base_kib=base, peak_kib=_status_kib("VmHWM"))
    return result


def _spawn(mode: str, json_path: Path, image_folder: Path, cache_dir: Path, log: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(json_path), str(image_folder), str(cache_dir)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    with log.open("a") as stderr:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, check=False)
    if done.returncode:
        sys.exit(f"the {mode} run failed (exit {done.returncode}); see {log}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_data(root: Path, records: int, picture_fraction: float, rle_chars: tuple[int, int], seed: int) -> Path:
    from theworld.testing.openspatial_fixtures import iter_openspatial_records, make_image_ids, write_openspatial_json

    ids = make_image_ids(max(1, records * 3 // 4), seed)
    json_path = root / "result_10_depth_convs.json"
    write_openspatial_json(json_path, iter_openspatial_records(records, ids, seed, rle_chars))
    pictures = root / "openimages" / "train"
    pictures.mkdir(parents=True)
    for image_id in random.Random(seed).sample(ids, int(len(ids) * picture_fraction)):
        (pictures / f"{image_id}.jpg").touch()  # empty: only the names are looked at
    return json_path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="OpenSpatialDataset ingest benchmark (see the module docstring).")
    parser.add_argument("--records", type=int, default=200_000, help="records to generate (default 200000)")
    parser.add_argument("--picture-fraction", type=float, default=0.5, help="ids with a picture file (default 0.5)")
    parser.add_argument("--rle-chars", type=int, nargs=2, default=(200, 1200), help="RLE string length range")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to create the temporary folder (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "JSON", "IMAGES", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(*args.child)))
        return 0
    root = Path(tempfile.mkdtemp(prefix="openspatial-bench-", dir=args.workdir))
    log = root / "children.log"
    try:
        start = time.perf_counter()
        json_path = write_data(root, args.records, args.picture_fraction, tuple(args.rle_chars), args.seed)
        size_mb = json_path.stat().st_size / 1e6
        print(
            f"wrote {args.records} records ({size_mb:.0f} MB, {size_mb * 1e6 / args.records:.0f} B/record) and "
            f"{args.picture_fraction:.0%} empty picture files in {time.perf_counter() - start:.0f} s to {root}"
        )
        images, cache = root / "openimages", root / "cache"
        naive = _spawn("naive", json_path, images, cache, log)
        first = _spawn("ours", json_path, images, cache, log)
        second = _spawn("ours", json_path, images, cache, log)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if first.get("cache_hit") or not second.get("cache_hit") or second.get("parses"):
        print(f"unexpected cache behaviour: first {first}, second {second}")
        return 1
    if not naive["served"] == first["served"] == second["served"]:
        print(f"the runs serve different records: {naive['served']}, {first['served']}, {second['served']}")
        return 1
    print(f"\n{'run':<22}{'wall s':>9}{'records/s':>12}{'MB/s':>8}{'peak RSS MB':>13}{'loader RSS MB':>15}")
    for name, run in (
        ("(a) naive json.load", naive),
        ("(b) ours, first start", first),
        ("(c) ours, cache hit", second),
    ):
        rate = f"{args.records / run['wall']:.0f}" if run is not second else "-"
        speed = f"{size_mb / run['wall']:.0f}" if run is not second else "-"
        loader = (run["peak_kib"] - run["base_kib"]) / 1024
        print(f"{name:<22}{run['wall']:>9.3f}{rate:>12}{speed:>8}{run['peak_kib'] / 1024:>13.0f}{loader:>15.0f}")
    loader_ratio = max(1, first["peak_kib"] - first["base_kib"]) / max(1, naive["peak_kib"] - naive["base_kib"])
    speedup = first["wall"] / second["wall"]
    print(f"\nserved {first['served']} of {args.records} records (the ones with a picture file) in every run")
    print(
        f"peak RSS of the whole process ours/naive: {first['peak_kib'] / naive['peak_kib']:.2f} "
        f"(both include the {first['base_kib'] / 1024:.0f} MB of the shared imports)"
    )
    ok_rss, ok_speed = loader_ratio <= RSS_GOAL, speedup >= SPEEDUP_GOAL
    print(f"loader RSS ours/naive: {loader_ratio:.3f} (goal <= {RSS_GOAL}) {'PASS' if ok_rss else 'FAIL'}")
    print(f"second start speed-up: {speedup:.0f}x (goal >= {SPEEDUP_GOAL:.0f}x) {'PASS' if ok_speed else 'FAIL'}")
    return 0 if ok_rss and ok_speed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
