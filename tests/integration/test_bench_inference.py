"""`lipstream bench inference --protocol lipsync,kserve`: both protocols in one run, compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lipstream.cli import main


def test_bench_inference_reports_both_protocols_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "inference.json"
    argv = ["bench", "inference", "--model", "parametric-mouth", "--streams", "1,2", "--seconds", "0.5"]
    assert main([*argv, "--protocol", "lipsync,kserve", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["protocols"] == ["lipsync", "kserve"] and len(result["machine"]["load_average"]) == 3
    runs = result["runs"]
    assert [(r["batching"], r["streams"], r["protocol"]) for r in runs] == [
        (batching, streams, protocol)
        for batching in (True, False)
        for streams in (1, 2)
        for protocol in ("lipsync", "kserve")
    ]
    for run in runs:
        assert run["frames"] > 0 and run["errors"] == 0, run
        assert run["latency_ms"]["p99"] >= run["latency_ms"]["p50"] > 0
        assert run["compute_ms_per_frame"] > 0 and run["server_cpu_ms_per_frame"] > 0
        assert 320_000 < run["wire_bytes_per_frame"] < 330_000, "the compact wire, on both protocols"
    comparisons = result["protocol_comparison"]
    assert [(c["batching"], c["streams"], c["protocol"]) for c in comparisons] == [
        (batching, streams, "kserve") for batching in (True, False) for streams in (1, 2)
    ]
    by_key = {(r["batching"], r["streams"], r["protocol"]): r for r in runs}
    for comparison in comparisons:
        kserve = by_key[(comparison["batching"], comparison["streams"], "kserve")]
        lipsync = by_key[(comparison["batching"], comparison["streams"], "lipsync")]
        assert comparison["p50_ratio"] == pytest.approx(kserve["latency_ms"]["p50"] / lipsync["latency_ms"]["p50"])
        assert abs(comparison["wire_bytes_difference"]) < 0.001 * lipsync["wire_bytes_per_frame"]


def test_bench_inference_refuses_an_unknown_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "inference", "--model", "parametric-mouth", "--protocol", "lipsync,grpc"]) == 2
    assert "unknown protocol(s) grpc" in capsys.readouterr().err
