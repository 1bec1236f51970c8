"""PNG figures of a sweep (needs matplotlib, the ``plot`` extra).

* ``latency_vs_size.png``: per-frame service latency (p50, bars to p99) against
  frame size, one line per batch size (and provider);
* ``fps_vs_batch.png``: throughput against batch size, one line per frame size;
* ``latency_hist.png``: histograms of per-frame service latency, one per
  frame size at the smallest batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..plotting import pyplot


def _ok(results):
    return [r for r in results if r.status == "ok"]


def plot_latency_vs_size(results, path: Path, stage: str = "service") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok = _ok(results)
    sizes = sorted({(r.width, r.height) for r in ok}, key=lambda s: s[0] * s[1])
    xs = {s: i for i, s in enumerate(sizes)}
    for provider in sorted({r.provider for r in ok}):
        for batch in sorted({r.batch for r in ok if r.provider == provider}):
            rows = sorted((r for r in ok if r.provider == provider and r.batch == batch), key=lambda r: r.width * r.height)
            x = [xs[(r.width, r.height)] for r in rows]
            p50 = np.array([r.stages[stage]["p50"] for r in rows])
            p99 = np.array([r.stages[stage]["p99"] for r in rows])
            ax.errorbar(x, p50, yerr=[np.zeros_like(p50), p99 - p50], marker="o", capsize=3,
                        label=f"{provider} batch {batch}")
    ax.set_xticks(range(len(sizes)), [f"{w}x{h}" for w, h in sizes])
    ax.set_xlabel("frame size")
    ax.set_ylabel(f"{stage} latency per frame (ms), p50 with bar to p99")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Latency vs frame size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fps_vs_batch(results, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok = _ok(results)
    for provider in sorted({r.provider for r in ok}):
        for size in sorted({(r.width, r.height) for r in ok if r.provider == provider}, key=lambda s: s[0] * s[1]):
            rows = sorted((r for r in ok if r.provider == provider and (r.width, r.height) == size), key=lambda r: r.batch)
            ax.plot([r.batch for r in rows], [r.fps for r in rows], marker="o", label=f"{provider} {size[0]}x{size[1]}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("frames per second")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Throughput vs batch size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency_hist(results, path: Path, stage: str = "service") -> Path:
    plt = pyplot()
    ok = [r for r in _ok(results) if len(r.samples_ms.get(stage, ())) > 0]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for provider in sorted({r.provider for r in ok}):
        mine = [r for r in ok if r.provider == provider]
        if not mine:
            continue
        smallest = min(r.batch for r in mine)
        for r in sorted((r for r in mine if r.batch == smallest), key=lambda r: r.width * r.height):
            v = r.samples_ms[stage]
            lo = max(float(v.min()), 1e-3)
            hi = max(float(v.max()), lo * 1.01)
            ax.hist(v, bins=np.geomspace(lo, hi, 50), histtype="step", linewidth=1.5,
                    label=f"{provider} {r.size} batch {r.batch} (p50 {np.median(v):.2f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel(f"{stage} latency per frame (ms)")
    ax.set_ylabel("frames")
    ax.legend(fontsize=8)
    ax.set_title("Latency histogram")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(results: Sequence, out_dir: str | Path) -> dict[str, str]:
    """Write the three figures; returns {title: file name} (relative to ``out_dir``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not _ok(results):
        return {}
    files = {
        "Latency vs frame size": plot_latency_vs_size(results, out_dir / "latency_vs_size.png"),
        "FPS vs batch size": plot_fps_vs_batch(results, out_dir / "fps_vs_batch.png"),
        "Latency histogram": plot_latency_hist(results, out_dir / "latency_hist.png"),
    }
    return {title: p.name for title, p in files.items()}
