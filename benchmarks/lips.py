"""`lipstream bench lips`: how far the bundled model opens the mouth, from quiet to loud and on a phone line.

For each voice (espeak-ng male and female, and the kit's buzzy synthetic voice), full band and
band-limited to 300-3400 Hz, at RMS levels from -35 to -10 dBFS: the 90th percentile of the
parametric-mouth model's opening over voiced frames, with the features as they were (`raw`)
and levelled (`levelled`: a whole file, and `live`: a live feed, 20 ms chunks, the model's
look-ahead of one frame). Background noise and silence give the largest opening anywhere.
The opening is the model's own curve (`parametric_mouth.opening`) of each frame's energy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.kit.speech import syllables
from benchmarks.kit.voices import VOICES, at_level, espeak, noise, phone_band, voiced_frames
from inference_service.models.parametric_mouth import LOOKAHEAD_FRAMES, opening
from lipstream.contract import CENTRE_FRAME, ENERGY_COMPONENT, WINDOW_FRAMES
from lipstream.timebase import SPEECH_RATE, VIDEO_FPS
from media_server.config import LevellingConfig
from media_server.speech.features import FeatureExtractor
from media_server.speech.incremental import IncrementalFeatures

LEVELS_DBFS = (-35, -30, -25, -20, -15, -10)
QUIET_DBFS = (-50, -60)
TARGET_OPENING = 0.6  # 90th percentile over voiced frames, for speech from -35 to -10 dBFS
QUIET_OPENING = 0.05  # at most, anywhere in silence or noise below -50 dBFS
LIVE_CHUNK = SPEECH_RATE // 50  # 20 ms, as a browser or a TTS streams

Openings = Callable[[np.ndarray], np.ndarray]


def file_openings(extractor: FeatureExtractor) -> Openings:
    return lambda samples: opening(extractor.vectors(samples)[:, ENERGY_COMPONENT])


def live_openings(extractor: FeatureExtractor) -> Openings:
    """The openings a live feed gets: windows emitted as the model's look-ahead allows."""

    def run(samples: np.ndarray) -> np.ndarray:
        features = IncrementalFeatures(extractor, LOOKAHEAD_FRAMES)
        emitted = [w for i in range(0, samples.size, LIVE_CHUNK) for _, w in features.push(samples[i : i + LIVE_CHUNK])]
        windows = np.stack(emitted + [w for _, w in features.finish()]).reshape(-1, WINDOW_FRAMES, 512)
        return opening(windows[:, CENTRE_FRAME, ENERGY_COMPONENT])

    return run


def speech_cases() -> list[tuple[str, np.ndarray]]:
    voices = [(voice.label, espeak(voice.espeak)) for voice in VOICES]
    return [*voices, ("buzzy", syllables(6.0, seed=3))]


def sweep(paths: dict[str, Openings]) -> dict[str, Any]:
    rows = []
    for label, clean in speech_cases():
        voiced = voiced_frames(clean)
        for band in ("full", "phone"):
            shaped = clean if band == "full" else phone_band(clean)
            for level in LEVELS_DBFS:
                samples = at_level(shaped, level)
                row: dict[str, Any] = {"voice": label, "band": band, "dbfs": level}
                for name, openings in paths.items():
                    values = openings(samples)[: voiced.size]
                    row[name] = round(float(np.percentile(values[voiced[: values.size]], 90)), 3)
                rows.append(row)
    quiet = [("silence", np.zeros(3 * SPEECH_RATE, np.float32))]
    quiet += [(f"noise {level} dBFS", noise(3.0, level)) for level in QUIET_DBFS]
    quiet_rows = [
        {"signal": name, **{path: round(float(openings(samples).max()), 3) for path, openings in paths.items()}}
        for name, samples in quiet
    ]
    return {"speech_p90_opening": rows, "quiet_max_opening": quiet_rows}


def verdict(result: dict[str, Any], path: str) -> dict[str, bool]:
    return {
        "speech_opens": min(row[path] for row in result["speech_p90_opening"]) >= TARGET_OPENING,
        "quiet_stays_shut": max(row[path] for row in result["quiet_max_opening"]) < QUIET_OPENING,
    }


def run() -> dict[str, Any]:
    started = time.perf_counter()
    raw, levelled = FeatureExtractor(), FeatureExtractor(level=LevellingConfig())
    paths = {"raw": file_openings(raw), "levelled": file_openings(levelled), "live": live_openings(levelled)}
    result: dict[str, Any] = {
        "bench": "lips",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "fps": VIDEO_FPS,
        "targets": {"p90_opening_min": TARGET_OPENING, "quiet_opening_max": QUIET_OPENING},
        "levelling": LevellingConfig().model_dump(),
        **sweep(paths),
    }
    result["verdict"] = {path: verdict(result, path) for path in paths}
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def table(result: dict[str, Any]) -> str:
    lines = ["| voice | band | dBFS | raw | levelled | live |", "|---|---|---|---|---|---|"]
    for row in result["speech_p90_opening"]:
        openings = " | ".join(f"{row[path]:.2f}" for path in ("raw", "levelled", "live"))
        lines.append(f"| {row['voice']} | {row['band']} | {row['dbfs']} | {openings} |")
    for row in result["quiet_max_opening"]:
        lines.append(f"| {row['signal']} (max) | | | {row['raw']:.2f} | {row['levelled']:.2f} | {row['live']:.2f} |")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("lips", help="mouth opening of the bundled model over speaking levels")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the results as JSON here")
    parser.set_defaults(handler=_main)


def _main(args: argparse.Namespace) -> int:
    result = run()
    print(table(result))
    print(json.dumps(result["verdict"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
