"""Figures of a run (needs the ``plot`` extra: matplotlib). Reads recorded files; no pipeline state."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MissingDependencyError
from .recording import read_dlc_table
from .recording.recorder import RecordingPaths
from .stats import STAGE_SPANS


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend, or MissingDependencyError with the pip hint."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("plots need matplotlib: `pip install 'rtpose[plot]'`") from exc
    return plt


def plot_run(paths: RecordingPaths, background_bgr: np.ndarray | None, out_png: str | Path,
             min_likelihood: float = 0.5) -> Path:
    """Trajectories over a video frame, likelihood over time, and per-stage latency histograms."""
    import pandas as pd

    plt = pyplot()
    table = read_dlc_table(paths.h5).droplevel("scorer", axis=1)
    timing = pd.read_csv(paths.timing_csv)
    bodyparts = list(dict.fromkeys(table.columns.get_level_values("bodyparts")))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    ax = axes[0]
    if background_bgr is not None:
        ax.imshow(background_bgr[..., ::-1])
    for bp in bodyparts:
        part = table[bp]
        good = part["likelihood"].to_numpy() >= min_likelihood
        ax.plot(part["x"].to_numpy()[good], part["y"].to_numpy()[good], ".", ms=2, label=bp)
    ax.set_title(f"poses (likelihood >= {min_likelihood})")
    ax.legend(markerscale=5, loc="upper right")
    ax.set_axis_off()
    ax = axes[1]
    for bp in bodyparts:
        ax.plot(table.index.to_numpy(), table[bp]["likelihood"].to_numpy(), lw=0.6, label=bp)
    ax.set_xlabel("frame")
    ax.set_ylabel("likelihood")
    ax.set_ylim(0, 1.02)
    ax.set_title("likelihood per frame")
    ax = axes[2]
    for name in ("queue", "preprocess", "inference", "decode", "predict"):
        start, end = STAGE_SPANS[name]
        ms = (timing[end] - timing[start]).to_numpy() * 1e-6
        ax.hist(ms, bins=60, histtype="step", label=f"{name} p50 {np.median(ms):.2f} ms")
    e2e = (timing["t_predicted_ns"] - timing["t_capture_ns"]).to_numpy() * 1e-6
    ax.hist(e2e, bins=60, histtype="step", lw=2, color="k", label=f"capture→predicted p50 {np.median(e2e):.2f} ms")
    ax.set_yscale("log")
    ax.set_xlabel("ms")
    ax.set_title("latency per stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
