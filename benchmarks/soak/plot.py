"""The soak's PNG: edge RSS, threads, descriptors and sockets against cycles, when matplotlib is installed.

matplotlib is no dependency of lipstream (nor of its test extra): it is imported by name at run
time, and without it the benches write their JSON alone.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from benchmarks.soak.report import RSS_GROWTH_TARGET_MB


def pyplot() -> Any | None:
    """matplotlib.pyplot on the file-only backend, or None when matplotlib is not installed."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def plot_soak(result: dict[str, Any], out: Path) -> bool:
    """Write the plot to `out`; False when matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    during, baseline, final = result["during"], result["baseline"], result["final"]
    cycles = [p["cycle"] for p in during]
    figure, (rss, threads, fds) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    rss.plot(cycles, [p["rss_mb"] for p in during], "o-", ms=3, label="during (sessions live)")
    rss.plot([0, final["cycle"]], [baseline["rss_mb"], final["rss_mb"]], "s", color="k", label="idle: baseline, final")
    rss.axhline(baseline["rss_mb"] + RSS_GROWTH_TARGET_MB, color="r", ls="--", lw=1, label="target: baseline + 20 MB")
    rss.set_ylabel("edge RSS (MB)")
    rss.legend(fontsize=8)
    trend = result["memory_trend"]
    rss.set_title(
        f"soak: {result['cycles_done']} cycles, {result['concurrency']} at once - RSS slope "
        f"{trend['rss_slope_mb_per_100_cycles']['all']} MB/100 cycles ({trend['verdict']})",
        fontsize=9,
    )
    threads.plot(cycles, [p["threads"] for p in during], "o-", ms=3, label="during")
    threads.plot([0, final["cycle"]], [baseline["threads"], final["threads"]], "s", color="k", label="idle")
    threads.set_ylabel("edge threads")
    threads.legend(fontsize=8)
    for key, label in (("fds", "descriptors"), ("sockets", "sockets")):
        values = [p[key]["total"] if key == "sockets" else p[key] for p in during]
        ends = [baseline[key], final[key]] if key == "fds" else [baseline[key]["total"], final[key]["total"]]
        line = fds.plot(cycles, values, "o-", ms=3, label=f"{label} during")[0]
        fds.plot([0, final["cycle"]], ends, "s", color=line.get_color(), mec="k", label=f"{label} idle")
    fds.set_ylabel("edge descriptors, sockets")
    fds.set_xlabel("cycles after the warm-up")
    fds.legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return True
