"""Figures of recorded poses (``rtpose plot``, the demo's figure). Needs the ``plot`` extra (matplotlib).

Every panel helper draws on a given matplotlib axis from arrays (no files), so
the demo and ``rtpose plot`` share them. Conventions, the same in every figure:
body parts in their fixed colours (:mod:`rtpose.viz.colors`); time runs from
dark to light (viridis); legends sit outside the data; every axis says its
quantity and unit with the names of :data:`LABELS` (the run summary's words:
likelihood, per-stage names, ms, px).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .colors import bodypart_mpl

#: One name per quantity, used by every figure.
LABELS = {
    "t": "time (s)",
    "x": "x (px)",
    "y": "y (px)",
    "speed": "speed (px/s)",
    "likelihood": "likelihood",
    "occupancy": "occupancy (s per bin)",
    "frames": "frames",
    "ms": "latency (ms)",
}
TIME_CMAP = "viridis"
CENTRE = "centre"  # the mean of a frame's body parts, where all are confident


def reference_xy(pose: np.ndarray, bodyparts: Sequence[str], pcutoff: float, bodypart: str | None = None) -> np.ndarray:
    """(N, 2) position per row: ``bodypart``'s where confident, or (None) the centre, the mean of all body
    parts where every one is confident (NaN otherwise: a mean over whichever parts happen to be confident
    would jump by half a body length when one drops out, and show as a burst of speed)."""
    confident = pose[..., 2] >= pcutoff
    if bodypart is not None and bodypart != CENTRE:
        k = list(bodyparts).index(bodypart)
        return np.where(confident[:, k:k + 1], pose[:, k, :2], np.nan)
    all_ok = confident.all(axis=1)
    return np.where(all_ok[:, None], pose[..., :2].mean(axis=1), np.nan)


def speed_px_s(xy: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Speed between each row and the previous one (NaN for the first row and across gaps)."""
    speed = np.full(len(xy), np.nan)
    if len(xy) > 1:
        dt = np.diff(t_s)
        with np.errstate(invalid="ignore", divide="ignore"):
            speed[1:] = np.where(dt > 0, np.hypot(*np.diff(xy, axis=0).T) / dt, np.nan)
    return speed


def dwell_s(t_s: np.ndarray) -> np.ndarray:
    """Seconds each row stands for: the time to the next row (the median step for the last)."""
    if len(t_s) < 2:
        return np.ones(len(t_s)) / 30.0
    dt = np.diff(t_s)
    return np.append(dt, np.median(dt))


def plot_trajectory(ax, xy: np.ndarray, t_s: np.ndarray, background_bgr: np.ndarray | None, size: tuple[int, int],
                    label: str):
    """``xy`` as a line coloured by time over a video frame; returns the mappable for a colour bar."""
    from matplotlib.collections import LineCollection

    _frame(ax, background_bgr, size)
    segments = np.stack([xy[:-1], xy[1:]], axis=1)
    keep = np.isfinite(segments).all(axis=(1, 2))
    lines = LineCollection(segments[keep], cmap=TIME_CMAP, linewidths=1.2)
    lines.set_array(t_s[1:][keep])
    lines.set_clim(float(t_s[0]) if len(t_s) else 0.0, float(t_s[-1]) if len(t_s) else 1.0)
    ax.add_collection(lines)
    ax.set_title(f"trajectory of {label}, coloured by time")
    return lines


def plot_occupancy(ax, xy: np.ndarray, t_s: np.ndarray, background_bgr: np.ndarray | None, size: tuple[int, int],
                   bin_px: float = 20.0):
    """Seconds spent per ``bin_px`` square, over a faint video frame; returns the mappable."""
    w, h = size
    _frame(ax, background_bgr, size, alpha=0.35)
    ok = np.isfinite(xy).all(axis=1)
    hist, xe, ye = np.histogram2d(xy[ok, 0], xy[ok, 1], bins=(max(1, int(np.ceil(w / bin_px))),
                                                                max(1, int(np.ceil(h / bin_px)))),
                                  range=((0, w), (0, h)), weights=dwell_s(t_s)[ok])
    shown = np.ma.masked_equal(hist.T, 0.0)
    image = ax.imshow(shown, extent=(0, w, h, 0), cmap="magma", interpolation="nearest", alpha=0.9)
    ax.set_title(f"occupancy ({bin_px:g} px bins)")
    return image


def plot_speed(ax, t_s: np.ndarray, speed: np.ndarray, label: str) -> None:
    ax.plot(t_s, speed, lw=0.5, color="0.6", label="frame to frame")
    if len(speed) > 5:
        import pandas as pd

        step = float(np.median(np.diff(t_s))) if len(t_s) > 1 else 1 / 30
        window = max(3, int(round(0.5 / step)) if step > 0 else 15)
        smooth = pd.Series(speed).rolling(window, center=True, min_periods=1).median().to_numpy()
        ax.plot(t_s, smooth, lw=1.4, color="k", label=f"median over {window * step:.1f} s")
    ax.set_xlabel(LABELS["t"])
    ax.set_ylabel(LABELS["speed"])
    ax.set_title(f"speed of {label}")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.15), ncols=2, fontsize=8, frameon=False)


def plot_likelihood_time(ax, t_s: np.ndarray, pose: np.ndarray, bodyparts: Sequence[str], pcutoff: float) -> list:
    handles = []
    for k, name in enumerate(bodyparts):
        handles += ax.plot(t_s, pose[:, k, 2], lw=0.6, color=bodypart_mpl(k), label=name)
    handles.append(ax.axhline(pcutoff, color="k", ls="--", lw=0.8, label=f"pcutoff {pcutoff:g}"))
    ax.set_xlabel(LABELS["t"])
    ax.set_ylabel(LABELS["likelihood"])
    ax.set_ylim(0, 1.02)
    ax.set_title("likelihood per body part over time")
    return handles


def plot_likelihood_hist(ax, pose: np.ndarray, bodyparts: Sequence[str], pcutoff: float) -> None:
    bins = np.linspace(0, 1, 41)
    for k, name in enumerate(bodyparts):
        lik = pose[:, k, 2]
        ax.hist(lik[np.isfinite(lik)], bins=bins, histtype="step", lw=1.2, color=bodypart_mpl(k), label=name)
    ax.axvline(pcutoff, color="k", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(LABELS["likelihood"])
    ax.set_ylabel(LABELS["frames"])
    below = np.mean(np.nan_to_num(pose[..., 2]) < pcutoff) if len(pose) else 0.0
    ax.set_title(f"likelihood histograms ({below:.1%} of points < {pcutoff:g})")


def _frame(ax, background_bgr: np.ndarray | None, size: tuple[int, int], alpha: float = 1.0) -> None:
    w, h = size
    if background_bgr is not None:
        ax.imshow(background_bgr[..., ::-1], extent=(0, w, h, 0), alpha=alpha)
    else:
        ax.set_facecolor("0.92")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.set_aspect("equal")
    ax.set_xlabel(LABELS["x"])
    ax.set_ylabel(LABELS["y"])


def plot_session(pose: np.ndarray, bodyparts: Sequence[str], t_s: np.ndarray, out: str | Path, *,
                 background_bgr: np.ndarray | None = None, size: tuple[int, int] | None = None,
                 pcutoff: float = 0.6, bodypart: str | None = None, title: str = "",
                 formats: Sequence[str] = ("png",)) -> list[Path]:
    """The ``rtpose plot`` sheet: trajectory, occupancy, speed, likelihood over time and histograms.
    Writes ``out`` with each suffix of ``formats``; returns the paths."""
    from ..plotting import pyplot

    plt = pyplot()
    if size is None:
        if background_bgr is not None:
            size = (background_bgr.shape[1], background_bgr.shape[0])
        else:
            finite = pose[..., :2][np.isfinite(pose[..., :2]).all(axis=-1)]
            size = (int(np.ceil(finite[:, 0].max())) + 1, int(np.ceil(finite[:, 1].max())) + 1) if len(finite) else (640, 480)
    label = bodypart or f"{CENTRE} (mean of the body parts, where all have likelihood >= {pcutoff:g})"
    short = bodypart or CENTRE
    xy = reference_xy(pose, bodyparts, pcutoff, bodypart)
    fig = plt.figure(figsize=(17, 9.5), layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=(1.15, 1))
    ax_traj, ax_occ, ax_speed = (fig.add_subplot(grid[0, i]) for i in range(3))
    lines = plot_trajectory(ax_traj, xy, t_s, background_bgr, size, short)
    fig.colorbar(lines, ax=ax_traj, label=LABELS["t"], shrink=0.8)
    occ = plot_occupancy(ax_occ, xy, t_s, background_bgr, size)
    fig.colorbar(occ, ax=ax_occ, label=LABELS["occupancy"], shrink=0.8)
    plot_speed(ax_speed, t_s, speed_px_s(xy, t_s), short)
    ax_lik = fig.add_subplot(grid[1, :2])
    handles = plot_likelihood_time(ax_lik, t_s, pose, bodyparts, pcutoff)
    plot_likelihood_hist(fig.add_subplot(grid[1, 2]), pose, bodyparts, pcutoff)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
    fig.suptitle((title + ": " if title else "") + f"{len(pose)} frames, {t_s[-1] - t_s[0] if len(t_s) else 0:.1f} s; "
                 f"position = {label}")
    out = Path(out)
    paths = []
    for fmt in formats:
        path = out.with_suffix("." + fmt)
        with plt.rc_context({"svg.fonttype": "none"}):  # SVG text stays text (editable, searchable)
            fig.savefig(path, dpi=100)
        paths.append(path)
    plt.close(fig)
    return paths
