"""Download OpenImages pictures into a flat folder (`<out_dir>/<image_id>.jpg`), resumably and in parallel.

    python scripts/openimages/download_openimages.py --id-list ids.txt --out-dir DIR [--workers 16]
        [--shard i/n] [--limit N] [--base-url URL] [--retries 3] [--timeout 30] [--no-progress]

The id list has lines `<split>/<image_id>` (the official downloader's format) or bare ids. Re-running the same
command resumes: files already present are skipped, failures are retried. Exit code 0 when every requested picture
is present, 1 when some failed (run again), 2 for a usage error (one line on stderr). The logic lives in
`theworld.data.openimages`; `download_openimages.sbatch` beside this file runs it as a SLURM array.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from theworld.data.openimages import DEFAULT_BASE_URL, download_images, parse_shard, read_id_list, shard_refs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="download_openimages.py",
        description="Download OpenImages pictures into a flat folder, resumably and in parallel.",
    )
    parser.add_argument("--id-list", required=True, help="text file of '<split>/<image_id>' lines")
    parser.add_argument("--out-dir", required=True, help="folder the pictures go to, flat: <image_id>.jpg")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"default {DEFAULT_BASE_URL}")
    parser.add_argument("--workers", type=int, default=16, help="parallel downloads (default 16)")
    parser.add_argument("--retries", type=int, default=3, help="extra attempts per picture (default 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per attempt (default 30)")
    parser.add_argument("--shard", default="0/1", help="'i/n': download every n-th id from the i-th (default 0/1)")
    parser.add_argument("--limit", type=int, help="only the first N ids of the list (before sharding)")
    parser.add_argument("--default-split", default="train", help="split of bare ids (default train)")
    parser.add_argument("--state-file", help="resume file (default: <out-dir>/.openimages_state.<shard>.jsonl)")
    parser.add_argument("--summary-file", help="JSON summary (default: <out-dir>/openimages_summary.<shard>.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.workers < 1 or args.retries < 0 or args.timeout <= 0 or (args.limit is not None and args.limit < 0):
            raise ValueError("expected --workers >= 1, --retries >= 0, --timeout > 0, --limit >= 0")
        index, count = parse_shard(args.shard)
        refs = read_id_list(args.id_list, default_split=args.default_split)
    except (ValueError, FileNotFoundError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    refs = shard_refs(refs[: args.limit] if args.limit is not None else refs, index, count)
    out_dir = Path(args.out_dir)
    tag = f"{index}of{count}"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = download_images(
            refs,
            out_dir,
            base_url=args.base_url,
            workers=args.workers,
            retries=args.retries,
            timeout=args.timeout,
            state_file=args.state_file or out_dir / f".openimages_state.{tag}.jsonl",
            summary_file=args.summary_file or out_dir / f"openimages_summary.{tag}.json",
            progress=not args.no_progress,
        )
    except OSError as error:  # disk full, no permission: stop here; what is on disk is complete
        sys.stderr.write(f"error: {error}\n")
        return 2
    print(summary.format())
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
