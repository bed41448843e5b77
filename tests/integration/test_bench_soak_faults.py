"""`lipstream bench soak`, `faults` and `overload`, each in its quickest run: the JSON holds real measurements."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.soak.cycles import KINDS
from lipstream.cli import main

SOAK_CYCLES = 8  # two of each kind


def test_soak_runs_every_cycle_and_compares_the_end_with_the_baseline(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    assert main(["bench", "soak", "--quick", "--cycles", str(SOAK_CYCLES), "--json", str(out)]) == 0
    result = json.loads(out.read_text())

    assert result["bench"] == "soak" and result["mode"] == "quick"
    assert result["cycles_asked"] == result["cycles_done"] == SOAK_CYCLES and result["cycles_failed"] == 0
    assert {kind: entry["cycles"] for kind, entry in result["kinds"].items()} == dict.fromkeys(KINDS, 2)
    # The edge ended every unanswered offer on its connect timeout (lowered for the bench), and noticed hang-ups.
    timeout = float(result["edge"]["environment"]["LIPSTREAM_EDGE_SESSIONS__CONNECT_TIMEOUT_S"])
    assert timeout - 0.5 < result["kinds"]["never_answered"]["gone_after_s"]["median"] < timeout + 5
    assert result["kinds"]["peer_close"]["gone_after_s"]["max"] < 60
    for point in (result["baseline"], result["final"]):
        assert point["sessions"] == 0 and point["rss_mb"] > 50 and point["uss_mb"] > 0
        assert point["threads"] > 1 and point["fds"] > 3 and point["sockets"]["tcp_LISTEN"] >= 1
    assert result["during"] and all(p["rss_mb"] > 0 for p in result["during"])
    assert set(result["targets"]) == {"threads", "fds", "sockets", "rss_growth_mb"}
    assert result["delta"]["rss_mb"] == round(result["final"]["rss_mb"] - result["baseline"]["rss_mb"], 2)
    assert result["machine"]["load_average_1m"]["start"] >= 0


def test_faults_measure_gaps_losses_health_and_the_lips_return(tmp_path: Path) -> None:
    out = tmp_path / "faults.json"
    assert main(["bench", "faults", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())

    assert result["bench"] == "faults" and result["mode"] == "quick"
    assert [fault["fault"] for fault in result["faults"]] == ["sigkill", "sigstop"]
    assert all(control["longest_gap_ms"] > 0 for control in result["control"])
    for fault in result["faults"]:
        assert len(fault["viewers"]) == result["viewers"] == 2
        for viewer in fault["viewers"]:
            assert viewer["longest_gap_ms"] > 0 and viewer["frames_expected"] > 0
            assert 0 <= viewer["frames_lost"] < viewer["frames_expected"]
            assert viewer["moving_pct_during_outage"] is not None
        assert fault["inference_back_after_injection_s"] >= result["options"]["down_s"]
        # The edge's /health noticed the inference tier gone, and that it came back.
        assert fault["health"]["went_503_after_injection_s"] is not None
        assert fault["health"]["back_to_200_after_inference_back_s"] is not None
        assert fault["inference_probe_after_window"]
        assert set(fault["targets"]) == {"longest_gap_ms", "lips_again_s"}
        assert all(len(series["t_s"]) == len(series["motion"]) > 0 for series in fault["series"])
    kill = result["faults"][0]
    assert kill["restart_to_serving_s"] > 0
    for viewer in kill["viewers"]:  # the restart counted, when the lips moved again at all
        assert viewer["lips_again_s"] is None or viewer["lips_again_after_restart_issued_s"] > viewer["lips_again_s"]


def test_overload_admits_up_to_the_limit_refuses_the_rest_and_recovers(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    assert main(["bench", "overload", "--quick", "--json", str(out)]) == 0
    result = json.loads(out.read_text())

    assert result["bench"] == "overload"
    viewers, limit = result["options"]["viewers"], result["options"]["max_sessions"]
    assert viewers > limit and 1 <= result["admitted"] <= limit
    # Those left out were told why, with the edge's own words, and nobody got in twice.
    assert result["refusals"] and result["refused_viewers"] >= viewers - limit
    assert sum(result["refusals"].values()) == sum(
        1 for a in result["attempts"] if a["viewer"] >= 0 and a["status"] != 200
    )
    assert len({v["viewer"] for v in result["viewers"]}) == result["admitted"]
    for viewer in result["viewers"]:
        assert viewer["watched_s"] > 0 and 0 < viewer["fps"] <= 30
        assert viewer["worst_second_fps"] <= viewer["fps"] + 1 and viewer["speaking_frames"] > 0
        assert len(result["per_second_fps"][str(viewer["viewer"])]) == int(result["options"]["load_s"])
    assert result["recovered_after_s"] is not None and result["recovered_after_s"] >= 0
    assert result["attempts"][-1] == {**result["attempts"][-1], "viewer": -1, "status": 200}
    assert result["machine"]["load_average_1m"]["start"] >= 0
