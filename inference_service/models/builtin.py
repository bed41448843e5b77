"""The models lipstream generates itself, because no trained weights can be downloaded.

Each is written once to the cache (`~/.cache/lipstream/models`) on first use and reused;
`FILE_VERSION` in the file name keeps a stale file from an older generator from being used.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from inference_service.models import parametric_mouth, synthetic_unet
from inference_service.models.graph import Graph
from lipstream.paths import cache_dir

log = logging.getLogger(__name__)

FILE_VERSION = "v1"  # bump when a generated graph changes, so stale caches are not reused


@dataclass(frozen=True)
class BuiltinModel:
    """A model the project generates itself; `build` writes it to the given path."""

    name: str
    lookahead_frames: int
    build: Callable[[Path], None]


def _builtin(name: str, lookahead_frames: int, description: str, graph: Callable[[], Graph]) -> BuiltinModel:
    def build(path: Path) -> None:
        onnx.save(graph().model(name, lookahead_frames, description), str(path))

    return BuiltinModel(name, lookahead_frames, build)


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in (
        _builtin(
            "parametric-mouth",
            lookahead_frames=parametric_mouth.LOOKAHEAD_FRAMES,
            description=(
                "Generated, untrained model: warps the lower lip and jaw of the reference crop down and "
                "darkens the mouth interior in proportion to the speech energy of the window's centre frame."
            ),
            graph=parametric_mouth.parametric_mouth,
        ),
        _builtin(
            "synthetic-unet",
            lookahead_frames=synthetic_unet.LOOKAHEAD_FRAMES,
            description=(
                "Generated, untrained model: a SyncTalk_2D-shaped UNet with fixed random weights, "
                "for benchmarks only; its output is not a face."
            ),
            graph=synthetic_unet.synthetic_unet,
        ),
    )
}


def lookup(name: str) -> BuiltinModel:
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise KeyError(f"unknown built-in model '{name}'; known: {', '.join(BUILTIN_MODELS)}") from None


def file_name(name: str) -> str:
    return f"{name}-{FILE_VERSION}.onnx"


def builtin_path(name: str, cache: Path | None = None) -> Path:
    """Where `ensure_builtin` keeps the model; KeyError for an unknown name."""
    lookup(name)
    return (cache if cache is not None else cache_dir()) / "models" / file_name(name)


def build_at(model: BuiltinModel, path: Path) -> Path:
    """Builds into a temp file beside `path` and renames it, so readers never see half a file."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        model.build(Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    log.info("built %s at %s in %.1f s", model.name, path, time.perf_counter() - started)
    return path


def ensure_builtin(name: str, cache: Path | None = None) -> Path:
    """The built-in model's file, generated on first use (a few seconds at most)."""
    return build_at(lookup(name), builtin_path(name, cache))
