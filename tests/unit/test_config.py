"""Service configs: validation at start-up, the override order, the shipped files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inference_service.config import load_inference_config
from media_server.config import load_edge_config
from signaling.workers.routing import usable_cores, worker_count

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    "service, content, field",
    [
        ("inference", "batching:\n  max_batch: 0\n", "batching.max_batch"),
        ("inference", "server:\n  port: 70000\n", "server.port"),
        ("inference", "runtime:\n  providers: [gpu]\n", "runtime.providers"),
        ("inference", "registry:\n  preload: [ghost]\n", "preload"),
        ("inference", "batching:\n  max_batchh: 4\n", "batching.max_batchh"),
        ("edge", "sessions:\n  max_sessions: 0\n", "sessions.max_sessions"),
        ("edge", "video:\n  keyframe_interval_s: 10\n", "video.keyframe_interval_s"),
        ("edge", "video:\n  min_bitrate_kbps: 2000\n", "video.start_bitrate_kbps"),
        ("edge", "video:\n  idle_rungs_kbps: [150, 250]\n", "video.idle_rungs_kbps"),
        ("edge", "http:\n  prot: 1\n", "http.prot"),
        ("edge", "inference:\n  protocol: grpc\n", "inference.protocol"),
        ("edge", "http:\n  workers: 0\n", "http.workers"),
        ("edge", "http:\n  workers: all\n", "http.workers"),
        ("edge", "- not a mapping\n", "top level must be a mapping"),
        ("edge", "tts:\n  max_chars: 0\n", "tts.max_chars"),
        ("edge", "tts:\n  engine: festival\n", "tts.engine"),
        ("edge", "tts:\n  engine: openai\n", "tts.openai.base_url"),
        ("edge", "tts:\n  openai:\n    voice: nobody\n", "tts.openai.voices"),
        ("edge", "levelling:\n  gate_dbfs: 5\n", "levelling.gate_dbfs"),
        ("edge", "http:\n  ice_port_range: 40010-40000\n", "http.ice_port_range"),
        ("edge", "http:\n  turn:\n    urls: [turn:turn.example.com]\n", "http.turn"),
        ("edge", "http:\n  ice_servers: [turn:user:pass@turn.example.com]\n", "http.ice_servers.0.urls.0"),
        ("edge", "http:\n  public_ip: edge.example.com\n", "http.public_ip"),
        ("edge", "http:\n  public_url: edge.example.com\n", "http.public_url"),
    ],
)
def test_bad_config_exits_2_naming_the_field(tmp_path: Path, service: str, content: str, field: str) -> None:
    path = tmp_path / f"{service}.yaml"
    path.write_text(content)
    run = subprocess.run(
        [sys.executable, "-m", "lipstream.cli", service, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert field in run.stderr


def test_env_and_flags_override_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "inference.yaml"
    path.write_text("server:\n  port: 6000\nbatching:\n  max_batch: 4\n")
    monkeypatch.setenv("LIPSTREAM_INFERENCE_BATCHING__MAX_BATCH", "16")
    config = load_inference_config(path, {"server.port": 7000})
    assert (config.server.port, config.batching.max_batch) == (7000, 16)
    monkeypatch.setenv("LIPSTREAM_EDGE_SESSIONS__MAX_SESSIONS", "3")
    assert load_edge_config(None).sessions.max_sessions == 3
    monkeypatch.setenv("LIPSTREAM_EDGE_TTS__OPENAI__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LIPSTREAM_EDGE_TTS__MAX_CHARS", "99")
    edge = load_edge_config(None, {"tts.engine": "openai"})  # the --tts-engine flag
    assert (edge.tts.engine, edge.tts.max_chars, edge.tts.openai.base_url) == ("openai", 99, "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LIPSTREAM_EDGE_INFERENCE__PROTOCOL", "kserve")
    assert load_edge_config(None).inference.protocol == "kserve"
    assert load_edge_config(None, {"inference.protocol": "lipsync"}).inference.protocol == "lipsync"


def test_shipped_configs_are_the_defaults() -> None:
    assert load_inference_config(CONFIGS / "inference.yaml") == load_inference_config(None)
    assert load_edge_config(CONFIGS / "edge.yaml") == load_edge_config(None)


def test_the_edge_flag_reaches_the_inference_protocol() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "lipstream.cli", "edge", "--inference-protocol", "grpc"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "inference.protocol" in run.stderr


def test_workers_are_a_count_or_auto(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("http:\n  workers: auto\n")
    assert load_edge_config(path).http.workers == "auto"
    assert load_edge_config(None, {"http.workers": 3}).http.workers == 3
    assert worker_count("auto") == usable_cores() and worker_count("auto", reserved_cores=64) == 1
    assert worker_count(3) == 3
