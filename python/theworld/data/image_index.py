"""`scan_image_folder`: which pictures of a (possibly still downloading) image folder are on disk, by id.

OpenImages pictures are stored as `<id>.jpg`, either flat or in subfolders (`train/`, `validation/`, ...), and users
start training while the download is still running. The scan walks the folder once with `os.scandir` (only names
are read: no stat of every file, no decoding), so it is cheap enough to repeat each epoch (`OpenSpatialDataset.rescan`).

[Contract] the result maps an id (the file name without its extension) to the picture's path relative to the folder
(POSIX separators). Only files with one of `extensions` (any case) count; files being written by a downloader
(`.part`, `.tmp`, `.partial`, `.crdownload`, `.download`, `.incomplete` anywhere in the name's suffixes) and hidden
files (rsync's `.name.XXXXXX` temporaries) are ignored. When an id exists twice, the lexicographically smallest
relative path wins, so the result does not depend on the directory order of the file system.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
PARTIAL_SUFFIXES = frozenset({".part", ".tmp", ".partial", ".crdownload", ".download", ".incomplete"})


def image_id(name: str, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> str:
    """The id of a picture name or path: its base name without a picture extension ("train/ab12.jpg" → "ab12")."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, extension = os.path.splitext(base)
    return stem if extension.lower() in {e.lower() for e in extensions} else base


def _is_partial(name: str) -> bool:
    return any(f".{part.lower()}" in PARTIAL_SUFFIXES for part in name.split(".")[1:])


def scan_image_folder(
    folder: str | os.PathLike[str], extensions: Iterable[str] = IMAGE_EXTENSIONS, progress: bool = True
) -> dict[str, str]:
    """{id: path relative to `folder`} of every picture below `folder` (recursive; see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image_folder {root} does not exist or is not a folder (expected pictures <id>.jpg)")
    wanted = frozenset(e.lower() for e in extensions)
    found: dict[str, str] = {}
    start = time.perf_counter()
    pending: list[tuple[str, str]] = [(str(root), "")]  # (absolute dir, relative prefix); a stack, not recursion
    visited: set[tuple[int, int]] = set()  # (device, inode) of each folder: a symlink loop is walked once
    with tqdm(desc=f"Scanning {root.name or root}", unit=" files", disable=not progress, mininterval=1.0) as bar:
        while pending:
            directory, prefix = pending.pop()
            try:
                info = os.stat(directory)
                if (info.st_dev, info.st_ino) in visited:
                    continue
                visited.add((info.st_dev, info.st_ino))
                entries = list(os.scandir(directory))
            except OSError as error:  # a folder removed or unreadable mid-scan: skip it, keep the rest
                logger.warning("cannot scan %s: %s", directory, error)
                continue
            for entry in entries:
                name = entry.name
                stem, dot, extension = name.rpartition(".")
                if dot and stem and f".{extension.lower()}" in wanted:
                    # A picture name (checked first: most entries are pictures, and it needs no system call).
                    if stem.startswith(".") or ("." in stem and _is_partial(stem)):
                        continue
                    relative = prefix + name
                    previous = found.get(stem)
                    if previous is None or relative < previous:
                        found[stem] = relative
                elif not name.startswith("."):
                    try:
                        if entry.is_dir():
                            pending.append((entry.path, f"{prefix}{name}/"))
                    except OSError:
                        continue
            bar.update(len(entries))
    logger.info("found %d picture(s) in %s (%.1f s)", len(found), root, time.perf_counter() - start)
    return found
