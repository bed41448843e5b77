"""`lipstream bench inference --protocol lipsync,kserve`: both protocols in one run, compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipstream.cli import main


def test_bench_inference_reports_both_protocols_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    argv = ["bench", "inference", "--model", "parametric-mouth", "--streams", "1,2", "--seconds", "0.3"]
    assert main([*argv, "--protocol", "lipsync,kserve", "--rounds", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocols"] == ["lipsync", "kserve"] and result["rounds"] == 2
    assert all(len(load) == 3 for load in result["machine"]["load_average"].values())
    runs = result["runs"]
    assert [(r["batching"], r["streams"], r["round"], r["protocol"]) for r in runs] == [
        (batching, streams, round_, protocol)
        for batching in (True, False)
        for streams in (1, 2)
        for round_ in (0, 1)
        for protocol in ("lipsync", "kserve")
    ]
    for run in runs:
        assert run["frames"] > 0 and run["errors"] == 0, run
        assert run["latency_ms"]["p99"] >= run["latency_ms"]["p50"] > 0
        assert run["compute_ms_per_frame"] > 0 and run["server_cpu_ms_per_frame"] > 0
        assert 320_000 < run["wire_bytes_per_frame"] < 330_000, "the compact wire, on both protocols"
    by_key = {(r["batching"], r["streams"], r["round"], r["protocol"]): r for r in runs}
    comparisons = result["protocol_comparison"]
    assert len(comparisons) == 8 and {c["protocol"] for c in comparisons} == {"kserve"}
    for comparison in comparisons:
        key = (comparison["batching"], comparison["streams"], comparison["round"])
        kserve, lipsync = by_key[(*key, "kserve")], by_key[(*key, "lipsync")]
        assert comparison["p50_ratio"] == pytest.approx(kserve["latency_ms"]["p50"] / lipsync["latency_ms"]["p50"])
        assert abs(comparison["wire_bytes_difference"]) < 0.001 * lipsync["wire_bytes_per_frame"]
    for summary in result["protocol_summary"]:
        assert summary["rounds"] == 2
        rounds = [
            c["p50_ratio"]
            for c in comparisons
            if (c["batching"], c["streams"]) == (summary["batching"], summary["streams"])
        ]
        assert summary["p50_ratio"] == {
            "median": pytest.approx(sum(rounds) / 2),
            "min": min(rounds),
            "max": max(rounds),
        }


def test_bench_inference_refuses_an_unknown_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "inference", "--model", "parametric-mouth", "--protocol", "lipsync,grpc"]) == 2
    assert "unknown protocol(s) grpc" in capsys.readouterr().err
