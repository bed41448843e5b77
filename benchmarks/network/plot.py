"""The network bench's PNG, when matplotlib is installed: per link rate, the bitrates over the talking session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.soak.plot import pyplot


def _label(entry: dict[str, Any]) -> str:
    return (
        f"{entry['mode']}: {entry['decoded_fps']} fps, {entry['freezes_over_200ms']} freezes, "
        f"audio lost {entry['audio_packets']['lost']}"
    )


def plot_network(result: dict[str, Any], out: Path) -> bool:
    """Write the plot to `out`; False when matplotlib is missing."""
    plt = pyplot()
    if plt is None:
        return False
    rates = result["rates"]
    figure, axes = plt.subplots(len(rates), 1, figsize=(11, 3.2 * len(rates)), squeeze=False)
    for (axis,), entry in zip(axes, rates, strict=True):
        rate = entry["rate_kbps"]
        for mode, colour in (("adaptive", "tab:blue"), ("fixed", "tab:red")):
            session = entry.get(mode)
            if session is None:
                continue
            series = session["series"]
            if mode == "adaptive":
                axis.plot(series["t_s"], series["target_kbps"], color=colour, lw=1.5, label="adaptive: target")
                estimates = [(t, e) for t, e in zip(series["t_s"], series["estimate_kbps"], strict=True) if e]
                if estimates:
                    axis.plot(*zip(*estimates, strict=True), ".", color="tab:green", ms=3, label="viewer's estimate")
            label = _label(session) + ", sent"
            axis.plot(series["t_s"], series["sent_kbps"], color=colour, lw=0.8, ls=":", label=label)
        if rate is not None:
            axis.axhline(rate, color="k", ls="--", lw=1, label=f"link {rate} kbit/s")
        axis.set_title(f"link {'unlimited' if rate is None else f'{rate} kbit/s'}", fontsize=9)
        axis.set_ylabel("kbit/s")
        axis.set_xlabel("s from the speech's start")
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return True
