"""`lipstream bench edge` end to end: it runs, and its JSON has the documented shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipstream.cli import main

STAGES = {"features", "crop", "composite", "convert", "encode", "total"}


def test_bench_edge_writes_per_stage_medians_for_both_paths(tmp_path: Path) -> None:
    out = tmp_path / "edge.json"
    assert main(["bench", "edge", "--avatar", "default", "--size", "320x240", "--frames", "8", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["bench"] == "edge"
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["platform"]
    assert [(run["size"], run["path"]) for run in result["runs"]] == [("320x240", "lipstream"), ("320x240", "naive")]
    for run in result["runs"]:
        ms = run["ms_per_frame"]
        assert set(ms) == STAGES
        assert all(value > 0 for value in ms.values()), ms
        assert ms["total"] >= ms["features"] + ms["composite"]
    totals = {run["path"]: run["ms_per_frame"]["total"] for run in result["runs"]}
    assert result["speedup"] == {"320x240": pytest.approx(totals["naive"] / totals["lipstream"])}


@pytest.mark.parametrize("size", ["720p", "641x480", "0x480"])
def test_bench_edge_rejects_bad_sizes(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "edge", "--size", size])
    assert exit_info.value.code == 2
    assert size in capsys.readouterr().err


def test_bench_edge_unknown_avatar_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "edge", "--avatar", str(tmp_path / "nope"), "--frames", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
