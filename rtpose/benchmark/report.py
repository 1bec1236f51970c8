"""Benchmark reports: one JSON file (machine + every result) and Markdown tables.

JSON layout (``"format": "rtpose-benchmark/1"``)::

    {"format", "command", "system": sysinfo.system_info(), "config": {...},
     "model": {"path", "bodyparts", "stride", "provider"},
     "sweep": [CombinationResult.to_json(), ...],        # when the sweep ran
     "latency": {test name: that test's result dict, ...}}  # when the latency suite ran

Every stage summary has ``n, p50, p90, p99, max, mean`` in milliseconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .summary import fmt
from .sysinfo import describe

FORMAT = "rtpose-benchmark/1"


def json_safe(obj):
    """JSON-safe: NaN/inf -> None, NumPy scalars/arrays -> Python."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, document: Mapping) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, **document}
    path.write_text(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_json(path: str | Path) -> dict:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rtpose benchmark file (format {doc.get('format')!r}, expected {FORMAT})")
    return doc


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str | None = None) -> str:
    align = align or ("l" * len(header))
    marks = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def sweep_table(results: Sequence[Mapping]) -> str:
    """The summary table: one row per combination (JSON result dicts)."""
    header = ["provider", "size", "batch", "FPS", "service p50", "p90", "p99", "max", "inference p50", "p99",
              "preprocess p50", "decode p50", "predict p50", "emit p50", "end-to-end p50", "p99", "others' CPU"]
    rows = []
    for r in results:
        if r.get("status", "ok") != "ok":
            rows.append([r["provider"], r["size"], str(r["batch"]), r["status"]] + [""] * (len(header) - 5)
                        + [r.get("reason", "")[:60]])
            continue
        st = r["stages"]
        g = lambda s, k: fmt(st.get(s, {}).get(k))  # noqa: E731
        rows.append([r["provider"], r["size"], str(r["batch"]), fmt(r["fps"], 1),
                     g("service", "p50"), g("service", "p90"), g("service", "p99"), g("service", "max"),
                     g("inference", "p50"), g("inference", "p99"),
                     g("preprocess", "p50"), g("decode", "p50"), g("predict", "p50"), g("emit", "p50"),
                     g("end_to_end", "p50"), g("end_to_end", "p99"), fmt(r.get("other_cpu_cores"), 2)])
    return _table(header, rows, "lllr" + "r" * (len(header) - 4))


def stage_table(results: Sequence[Mapping], stages: Sequence[str]) -> str:
    """Long form: every stage's p50/p90/p99/max per combination."""
    header = ["provider", "size", "batch", "stage", "p50", "p90", "p99", "max", "n"]
    rows = []
    for r in results:
        if r.get("status", "ok") != "ok":
            continue
        for s in stages:
            v = r["stages"].get(s)
            if v:
                rows.append([r["provider"], r["size"], str(r["batch"]), s, fmt(v["p50"]), fmt(v["p90"]),
                             fmt(v["p99"]), fmt(v["max"]), str(v.get("n") or "")])
    return _table(header, rows, "llllrrrrr")


def latency_tables(latency: Mapping[str, Mapping], level: int = 3) -> str:
    """Markdown for the latency suite: each test's title, its own ``markdown`` tables and its verdict."""
    parts = []
    for name, res in latency.items():
        parts.append(f"{'#' * level} {res.get('title', name)}\n")
        if res.get("status") in ("skipped", "failed"):
            parts.append(f"{res['status'].capitalize()}: {res.get('reason', '')}\n")
            continue
        if res.get("markdown"):
            parts.append(res["markdown"].rstrip() + "\n")
        if res.get("other_cpu_cores") is not None:
            parts.append(f"Other processes kept {res['other_cpu_cores']:.2f} cores busy on average during this test.\n")
        if res.get("verdict"):
            parts.append(f"**Goal:** {res['verdict']}\n")
    return "\n".join(parts)


def markdown_report(doc: Mapping, *, plots: Mapping[str, str] | None = None, title: str = "rtpose benchmark",
                    level: int = 1) -> str:
    """The whole Markdown report of a benchmark JSON document; headings start at ``level``."""
    h = "#" * level
    lines = [f"{h} {title}", "", f"Machine: {describe(doc['system'])}", ""]
    if doc.get("system_after"):
        after = doc["system_after"]
        busy = ", ".join(f"`{p['command'][:60]}` {p['cpu_percent']:.0f}% CPU" for p in after.get("busy_processes", []))
        lines += [f"At the end: load {after.get('load_average')}; "
                  + (f"under contention: {busy}" if busy else "no other busy process"), ""]
    if doc.get("command"):
        lines += [f"Command: `{doc['command']}`", ""]
    model = doc.get("model") or {}
    if model:
        lines += [f"Model: `{model.get('path')}` ({len(model.get('bodyparts', []))} body parts, stride "
                  f"{model.get('stride')})", ""]
    if doc.get("sweep"):
        cfg = doc.get("config", {})
        lines += [f"{h}# Sweep (real pipeline, offline mode)", "",
                  f"{cfg.get('frames')} frames per combination after {cfg.get('warmup_frames')} warm-up frames. "
                  "Latencies per frame in ms. `service` = dequeue to emit (everything the engine does for a frame); "
                  "`inference` is the whole batch's network run; `end-to-end` adds the time waiting in the frame "
                  "ring, which offline depends on the ring size. `others' CPU`: cores kept busy by other processes "
                  "during the combination (0 = the machine was otherwise idle).", "",
                  sweep_table(doc["sweep"]), ""]
        for title, file in (plots or {}).items():
            lines += [f"![{title}]({file})", ""]
        lines += ["<details><summary>Every stage, every combination</summary>", "",
                  stage_table(doc["sweep"], ("queue", "preprocess", "inference", "decode", "predict", "emit",
                                             "service", "end_to_end")),
                  "", "</details>", ""]
    if doc.get("latency"):
        lines += [f"{h}# Latency tests", "", latency_tables(doc["latency"], level + 2), ""]
    return "\n".join(lines)
