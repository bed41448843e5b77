"""The faults bench's PNG, when matplotlib is installed: per fault, frame arrival gaps and mouth motion over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.faults.report import MAX_GAP_MS
from benchmarks.soak.plot import pyplot


def _marks(axes: Any, fault: dict[str, Any]) -> None:
    """The injection, the inference back, and the stretches /health was not 200."""
    axes.axvline(0, color="r", lw=1)
    axes.axvline(fault["inference_back_after_injection_s"], color="g", lw=1)
    for span in fault["health"]["not_200_spans_s"]:
        axes.axvspan(span["from"], span["to"] + 0.1, color="orange", alpha=0.2, lw=0)


def plot_faults(result: dict[str, Any], out: Path) -> bool:
    """Write the plot to `out`; False when matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    faults = result["faults"]
    figure, axes = plt.subplots(len(faults), 2, figsize=(13, 4 * len(faults)), squeeze=False)
    for row, fault in zip(axes, faults, strict=True):
        gaps, motion = row
        for number, series in enumerate(fault["series"]):
            gaps.plot(series["t_s"], series["gap_ms"], ".-", ms=2, lw=0.6, label=f"viewer {number + 1}")
            line = motion.plot(series["t_s"], series["motion"], lw=0.7, label=f"viewer {number + 1}")[0]
            motion.axhline(series["threshold"][0], color=line.get_color(), ls=":", lw=1)
        gaps.axhline(MAX_GAP_MS, color="k", ls="--", lw=1, label="target 100 ms")
        _marks(gaps, fault)
        _marks(motion, fault)
        checks = fault["targets"]
        gaps.set_title(
            f"{fault['fault']}: longest gap {checks['longest_gap_ms']['measured']} ms, "
            f"{fault['frames_lost']} frames lost (red: injected, green: inference back, orange: /health not 200)",
            fontsize=8,
        )
        motion.set_title(
            f"{fault['fault']}: mouth motion; lips again {checks['lips_again_s']['measured']} s", fontsize=8
        )
        gaps.set_ylabel("gap before frame (ms)")
        motion.set_ylabel("mouth motion (grey levels)")
        gaps.set_yscale("log")
        for axis in row:
            axis.set_xlabel("s from the injection")
            axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return True
