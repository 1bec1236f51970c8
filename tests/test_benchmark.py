"""Smoke tests of `rtpose benchmark`: a tiny sweep writes valid JSON, PNG and Markdown.
No timing is asserted; only structure, counts and the report plumbing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtpose.benchmark import report
from rtpose.benchmark.summary import summarize
from rtpose.benchmark.sweep import SweepConfig, parse_ints, parse_sizes
from rtpose.cli import main
from rtpose.cli.benchmark_cmd import GENERATED_BEGIN, GENERATED_END
from rtpose.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def zero_model(tmp_path_factory):
    from analytic_model import build_zero_model

    return build_zero_model(tmp_path_factory.mktemp("bm") / "zero.onnx", num_bodyparts=4, stride=8)


def test_summarize_uses_numpy_percentiles_and_handles_empty():
    s = summarize(np.arange(1, 101, dtype=float))
    assert s["n"] == 100 and s["max"] == 100 and s["mean"] == 50.5
    assert s["p50"] == pytest.approx(50.5) and s["p99"] == pytest.approx(99.01)
    empty = summarize([])
    assert empty["n"] == 0 and np.isnan(empty["p50"])


def test_parsers_reject_bad_values():
    assert parse_sizes("320x240, 640X480") == ((320, 240), (640, 480))
    assert parse_ints("1,4,16", "--batch") == (1, 4, 16)
    for bad in ("320", "320x", "axb", ""):
        with pytest.raises(ConfigError):
            parse_sizes(bad)
    with pytest.raises(ConfigError):
        parse_ints("1,x", "--batch")
    with pytest.raises(ConfigError):
        SweepConfig(sizes=((16, 16),))
    with pytest.raises(ConfigError):
        SweepConfig(batches=(0,))


def test_two_combination_sweep_writes_json_png_markdown_and_updates_the_doc(zero_model, tmp_path, capsys):
    doc = tmp_path / "perf.md"
    doc.write_text(f"# Perf\n\nintro\n\n{GENERATED_BEGIN}\nold numbers\n{GENERATED_END}\n\noutro\n")
    out = tmp_path / "out"
    rc = main(["benchmark", "--model", str(zero_model), "--sizes", "64x48", "--batch", "1,3",
               "--providers", "cpu,cuda", "--frames", "12", "--warmup", "2", "--out", str(out),
               "--update-doc", str(doc)])
    assert rc == 0
    data = report.read_json(out / "benchmark.json")
    json.loads((out / "benchmark.json").read_text())  # strict JSON (no NaN)
    assert data["system"]["usable_cores"] >= 1 and data["system"]["cpu_model"]
    assert "numpy" in data["system"]["packages"]
    ok = [r for r in data["sweep"] if r["status"] == "ok"]
    assert [(r["size"], r["batch"]) for r in ok] == [("64x48", 1), ("64x48", 3)]
    for r in ok:
        assert r["frames"] == 12 and r["dropped"] == 0
        assert r["other_cpu_cores"] is None or r["other_cpu_cores"] >= 0
        assert r["fps"] > 0
        for stage in ("preprocess", "inference", "decode", "predict", "emit", "service", "end_to_end"):
            s = r["stages"][stage]
            assert s["n"] == 12 and 0 <= s["p50"] <= s["p90"] <= s["p99"] <= s["max"]
        # service is the sum of its parts, frame by frame, so its mean is the sum of their means
        parts = sum(r["stages"][p]["mean"] for p in ("preprocess", "inference", "decode", "predict", "emit"))
        assert r["stages"]["service"]["mean"] == pytest.approx(parts, rel=1e-6)
    cuda = [r for r in data["sweep"] if r["provider"] == "cuda"]
    if "CUDAExecutionProvider" not in data["system"]["onnxruntime_providers"]:
        assert cuda and all(r["status"] == "skipped" and "cuda" in r["reason"] for r in cuda)
    for name in ("latency_vs_size.png", "fps_vs_batch.png", "latency_hist.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    md = (out / "benchmark.md").read_text()
    assert "| provider | size | batch | FPS |" in md and "| cpu | 64x48 | 3 |" in md
    assert "![Latency vs frame size](latency_vs_size.png)" in md
    text = doc.read_text()
    assert "old numbers" not in text and "| cpu | 64x48 | 1 |" in text
    assert text.startswith("# Perf\n\nintro\n") and text.rstrip().endswith("outro")
    assert "(out/latency_vs_size.png)" in text  # image links relative to the doc
    assert "## Measured" in text and "### Sweep" in text
    assert "| cpu | 64x48 | 1 |" in capsys.readouterr().out


def test_update_doc_without_markers_is_a_config_error(zero_model, tmp_path, capsys):
    doc = tmp_path / "perf.md"
    doc.write_text("# no markers\n")
    rc = main(["benchmark", "--model", str(zero_model), "--sizes", "64x48", "--batch", "1", "--frames", "4",
               "--warmup", "0", "--out", str(tmp_path / "o"), "--update-doc", str(doc)])
    assert rc == 2
    assert "BEGIN GENERATED" in capsys.readouterr().err
