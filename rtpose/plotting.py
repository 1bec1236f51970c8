"""Figures of a run (needs the ``plot`` extra: matplotlib). Reads recorded files; no pipeline state."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MissingDependencyError
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
             min_likelihood: float = 0.6) -> Path:
    """The demo's figure: the trajectory coloured by time over a video frame, the likelihood of every body
    part over time, and the latency of every stage with the run summary's names. Panels, colours and axis
    names are those of ``rtpose plot`` (:mod:`rtpose.viz.figures`)."""
    import pandas as pd

    from .recording.reader import read_recording
    from .viz.figures import CENTRE, LABELS, plot_likelihood_time, plot_trajectory, reference_xy

    plt = pyplot()
    rec = read_recording(paths.h5)
    timing = pd.read_csv(paths.timing_csv)
    t_s = rec.times_s()
    size = ((background_bgr.shape[1], background_bgr.shape[0]) if background_bgr is not None
            else (int(np.nanmax(rec.pose[..., 0], initial=639)) + 1, int(np.nanmax(rec.pose[..., 1], initial=479)) + 1))
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.6), layout="constrained", width_ratios=(1, 1.3, 1))
    lines = plot_trajectory(axes[0], reference_xy(rec.pose, rec.bodyparts, min_likelihood), t_s, background_bgr,
                            size, CENTRE)
    fig.colorbar(lines, ax=axes[0], label=LABELS["t"], shrink=0.85)
    handles = plot_likelihood_time(axes[1], t_s, rec.pose, rec.bodyparts, min_likelihood)
    axes[1].legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=len(handles),
                   fontsize=8, frameon=False)
    ax = axes[2]
    for name in ("queue", "preprocess", "inference", "decode", "predict"):
        start, end = STAGE_SPANS[name]
        ms = (timing[end] - timing[start]).to_numpy() * 1e-6
        ax.hist(ms, bins=60, histtype="step", label=f"{name} p50 {np.median(ms):.2f}")
    # the recording stops at t_predicted_ns: end_to_end of the summary minus its (sub-ms) emit stage
    e2e = (timing["t_predicted_ns"] - timing["t_capture_ns"]).to_numpy() * 1e-6
    ax.hist(e2e, bins=60, histtype="step", lw=2, color="k", label=f"end_to_end without emit p50 {np.median(e2e):.2f}")
    ax.set_yscale("log")
    ax.set_xlabel(LABELS["ms"])
    ax.set_ylabel(LABELS["frames"])
    ax.set_title("latency per stage (names as in the run summary)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2, fontsize=8, frameon=False)
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
