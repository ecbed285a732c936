"""The benchmark harness at tiny scale (1 client, 1 short clip), so it cannot rot; correctness only, no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, ServerProcess


def test_bench_quick_writes_sane_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--results-dir", str(tmp_path)]
    reply = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=280)
    assert reply.returncode == 0, reply.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (tmp_path / "latest.json").is_file()
    assert set(result) >= {"meta", "single_stream", "offline", "comparison", "capacity", "targets"}
    assert result["meta"]["endpoint_silence_ms"] == 500

    for mode, interim in (("interim_off", False), ("interim_on", True)):
        single = result["single_stream"][mode]
        assert single["interim_results"] is interim
        assert not single["errors"]
        assert single["finals"] >= 1
        latency = single["final_latency_s"]
        assert latency["n"] == single["finals"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["max"] < 60
        assert 0 <= single["wer"] < 0.5  # a clean LibriSpeech clip
        assert single["cpu_per_audio_s"] > 0
    assert result["single_stream"]["interim_off"]["partials"] == 0
    interim_on = result["single_stream"]["interim_on"]
    assert interim_on["partials"] >= 1 and interim_on["first_partial_s"]["n"] >= 1

    assert 0 <= result["offline"]["wer"] < 0.5 and result["offline"]["cpu_per_audio_s"] > 0
    for label in ("batching_off", "batching_on"):
        capacity = result["capacity"][label]
        assert [step["n"] for step in capacity["steps"]] == [1]
        assert capacity["capacity"] in (0, 1)
        assert capacity["steps"][0]["finals"] >= 1
    assert set(result["targets"]) == {
        "single_stream_final_p50_le_endpoint_plus_1s",
        "wer_ratio_le_1_10",
        "cpu_interim_off_le_1_3x_offline",
    }

    real = result["real"]
    assert real["recordings"] == 2
    for shape in ("continuous", "alone"):
        for mode in ("interim_on", "interim_off"):
            figures = real[f"{shape}_{mode}"]
            assert not figures["errors"] and figures["finals"] >= 2
            assert 0 <= figures["wer"] < 0.5 and figures["reference_words"] > 5
            assert figures["duplicated_runs"] == []
    assert real["continuous_interim_on"]["words_after_speech"] == 0
    assert real["continuous_interim_on"]["final_latency_s"]["n"] == real["continuous_interim_on"]["finals"]
    for key in (
        "continuous_beam1",
        "continuous_beam5",
        "continuous_server",
        "alone_beam1",
        "alone_beam5",
        "alone_server",
    ):
        assert 0 <= real["offline"][key]["wer"] < 0.5


def test_gpu_check_runs_its_three_steps_here(tmp_path: Path) -> None:
    """scripts/gpu_check.py at tiny scale on this machine's CPU (`auto` finds no GPU here): pack, run, report."""
    script = [sys.executable, str(ROOT / "scripts" / "gpu_check.py")]
    audio, out = tmp_path / "audio", tmp_path / "run" / "gpu.json"
    steps = (["pack", str(audio), "--limit", "2"], ["run", str(audio), str(out), "--steps", "1"])
    for args in steps:
        reply = subprocess.run([*script, *args], capture_output=True, text=True, cwd=ROOT, timeout=200)
        assert reply.returncode == 0, reply.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["recordings"] == 2 and result["cuda_devices"] == 0
    assert list(result["phases"]) == ["auto", "cpu"]
    for device, phase in result["phases"].items():
        assert [e["device"] for e in phase["model_loaded"]] == ["cpu"]
        assert not phase["errors"] and len(phase["texts"]) == 2 and all(phase["texts"].values())
        assert phase["log_problems"] == []
        assert phase["thread_cpu_s"]["main"] > 0 and sum(phase["thread_cpu_s"]["others"]) > 0
        assert (out.parent / "logs" / f"{device}.log").is_file()
    assert [step["n"] for step in result["phases"]["auto"]["capacity_steps"]] == [1]
    assert result["phases"]["cpu"]["capacity_steps"] == []
    reply = subprocess.run([*script, "report", str(out), str(audio)], capture_output=True, text=True, cwd=ROOT)
    assert reply.returncode == 0, reply.stderr[-3000:]
    assert reply.stdout.count("WER {'wer': ") == 2


def test_finals_check_gives_the_same_finals_twice(server: ServerProcess, tmp_path: Path) -> None:
    """scripts/finals_check.py on the 3 shortest recordings: a deterministic server repeats itself word for word."""
    runs = []
    for name in ("a.json", "b.json"):
        command = [sys.executable, str(ROOT / "scripts" / "finals_check.py"), server.address, str(tmp_path / name)]
        reply = subprocess.run([*command, "--recordings", "3"], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert reply.returncode == 0, reply.stderr[-3000:]
        assert "'reference_words': " in reply.stdout
        runs.append(json.loads((tmp_path / name).read_text()))
    assert runs[0] and all(runs[0]) and runs[0] == runs[1]
