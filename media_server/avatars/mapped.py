"""Decoded avatar arrays as files in the cache, memory-mapped read-only by every process that plays them.

Decoding an avatar (its JPEGs or video to I420, every frame's model crop) happens once per version
of its source files; the arrays are written as `.npy` files and every edge worker maps the same
files. The kernel's page cache then holds one copy of the frames however many workers serve the
avatar, and a worker that starts (or is restarted) maps them instead of decoding again.

The version is a digest of the source files (content of the small ones, size and modification time
of the frames), so an avatar prepared again is decoded again. A version is written under a temporary
name and renamed into place, so processes that decode it at once never see half a file; older
versions of the avatar are removed then (a process still mapping one keeps its pages until it unmaps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SMALL_FILE_BYTES = 1 << 20  # files up to this size are hashed by content
DONE = "arrays.json"  # written last: the names of the arrays in a complete version

Arrays = dict[str, np.ndarray]


def version_of(files: Iterable[Path]) -> str:
    """A digest that changes whenever one of the files does."""
    digest = hashlib.sha256(f"lipstream-avatar-arrays {FORMAT_VERSION}".encode())
    for path in files:
        digest.update(path.name.encode())
        try:
            stat = path.stat()
        except OSError:
            digest.update(b"missing")
            continue
        if stat.st_size <= SMALL_FILE_BYTES:
            digest.update(path.read_bytes())
        else:
            digest.update(f"{stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _home(root: Path, source: Path) -> Path:
    """Where the versions of the avatar at `source` live."""
    return root / hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:32]


def _write(arrays: Arrays, target: Path) -> None:
    """All of `arrays` under `target`, which appears complete or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", np.ascontiguousarray(array))
        (staging / DONE).write_text(json.dumps(sorted(arrays)), encoding="utf-8")
        os.rename(staging, target)
    except OSError:
        if not (target / DONE).is_file():
            raise
        log.debug("%s was written by another process first", target)  # same content: theirs stands
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for old in target.parent.iterdir():
        if old != target and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)


def mapped_arrays(root: Path, source: Path, version: str, decode: Callable[[], Arrays]) -> Arrays:
    """The arrays of `source` at `version`, read-only and memory-mapped; `decode()` makes them the first time."""
    target = _home(root, source) / version
    if not (target / DONE).is_file():
        _write(decode(), target)
    names = json.loads((target / DONE).read_text(encoding="utf-8"))
    # Plain array views of the maps: a slice of an np.memmap is another memmap, made in Python each time.
    return {name: np.load(target / f"{name}.npy", mmap_mode="r").view(np.ndarray) for name in names}
