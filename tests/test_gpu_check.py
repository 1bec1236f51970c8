"""latency_tests/gpu_check.py cannot rot: its --cpu-smoke mode runs end to end here (tiny frame counts, CPU
provider), in a fresh interpreter where pyzmq, pyserial, pandas and PyYAML cannot be imported (the GPU
machine has none of them), and writes the JSON + Markdown report with every section filled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="needs onnx (the test extra)")
pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'rtpose[cpu]')")

REPO = Path(__file__).resolve().parents[1]
ABSENT_ON_THE_GPU_MACHINE = ("zmq", "serial", "pandas", "tables", "yaml")

RUNNER = f"""
import runpy, sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {ABSENT_ON_THE_GPU_MACHINE!r}:
            raise ImportError(f"{{name}} is not installed on the GPU machine")
sys.meta_path.insert(0, Absent())
sys.argv = ["gpu_check.py"] + sys.argv[1:]
runpy.run_path({str(REPO / "latency_tests" / "gpu_check.py")!r}, run_name="__main__")
"""


@pytest.mark.slow
def test_cpu_smoke_run_writes_the_full_report(tmp_path):
    out = tmp_path / "out"
    env_cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", RUNNER, "--cpu-smoke", "--out", str(out), "--budget-s", "900"],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={"RTPOSE_CACHE_DIR": str(env_cache), "PATH": "/usr/bin:/bin",
                               "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["smoke"] and not report["errors"], report["errors"]
    assert not report["skipped"], report["skipped"]
    assert report["environment"]["imported_zmq_or_serial"] == "none"
    # NVDEC's steps ran on the smoke run's stand-in decoder (OpenCV): its frames are OpenCV's, exactly
    assert {r["label"] for r in report["analyze"] if r.get("decode") == "nvdec"} >= {"NVDEC decode alone"}
    assert any(r["label"].endswith("NVDEC decoding") and r["frames"] > 0 for r in report["analyze"])
    (nv,) = [r for r in report["correctness"] if r["check"].startswith("NVDEC frames")]
    assert nv["frames"] == 8 and nv["pixel_max_abs"] == 0 and nv["pose_max_px"] == 0
    checks = [r for r in report["correctness"] if r["check"].startswith("decode in graph")]
    assert {r["model"] for r in checks} == {"bundled", "resnet50"} and all(r["mismatches"] == 0 for r in checks)
    live = {(r["model"], r["cameras"]) for r in report["live"] if r["p99_ms"] is not None and r["n"] > 0}
    assert live == {("bundled", 1), ("bundled", 4), ("resnet50", 1), ("resnet50", 4)}
    assert {r["batch"] for r in report["offline"] if r["model"] == "bundled"} == {1, 4}
    assert any(r["model"] == "resnet50" for r in report["offline"])
    assert any(r.get("source") == "video" and r["fps"] > 0 for r in report["analyze"])
    assert any(r.get("videos_at_once") == 4 and r["frames"] == 32 for r in report["analyze"])
    assert set(report["verdict"]) >= {"offline_fps_bundled_engine", "live_p99_ms_bundled_1cam",
                                      "live_p99_ms_resnet50_4cam"}
    md = (out / "gpu_check.md").read_text()
    assert "CPU smoke run: figures mean nothing" in md and "## Live: frame in ring -> trigger write (ms)" in md
