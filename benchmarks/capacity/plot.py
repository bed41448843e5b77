"""The bench's PNG: a session's edge CPU, idle and speaking, for one run or several side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.capacity.report import IDLE_TARGET_PCT, SPEAKING_TARGET_PCT
from benchmarks.soak.plot import pyplot


def plot_runs(results: list[dict[str, Any]], out: Path) -> bool:
    """Bars per run (by label): CPU per idle and speaking session, PSS per session; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    labels = [r["label"] for r in results]
    positions = range(len(results))
    figure, (cpu, memory) = plt.subplots(1, 2, figsize=(4 + 1.6 * len(results), 4.5))
    width = 0.38
    for offset, phase, target in ((-width / 2, "idle", IDLE_TARGET_PCT), (width / 2, "speaking", SPEAKING_TARGET_PCT)):
        values = [r["per_session"]["cpu_pct"][phase] for r in results]
        bars = cpu.bar([p + offset for p in positions], values, width, label=f"{phase} (target <= {target:g} %)")
        cpu.bar_label(bars, fmt="%.1f", fontsize=7)
        cpu.axhline(target, color=bars.patches[0].get_facecolor(), ls="--", lw=1)
    cpu.set_xticks(list(positions), labels, rotation=20, ha="right", fontsize=8)
    cpu.set_ylabel("edge CPU per session (% of one core)")
    cpu.legend(fontsize=8)
    bars = memory.bar(list(positions), [r["per_session"]["pss_mb"] for r in results], 0.5)
    memory.bar_label(bars, fmt="%.1f", fontsize=7)
    memory.set_xticks(list(positions), labels, rotation=20, ha="right", fontsize=8)
    memory.set_ylabel("edge PSS per idle session (MB)")
    load = ", ".join(str(r["machine"]["load_average_1m"]["start"]) for r in results)
    figure.suptitle(f"edge-capacity: {results[0]['sessions']} sessions, load at start {load}", fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return True
