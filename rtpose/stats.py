"""Latency statistics per pipeline stage (pure: timestamps in, percentiles out).

Stage durations are derived from a :class:`~rtpose.results.PoseBatch`'s
timestamps and stored in preallocated float64 arrays of the most recent
``capacity`` frames (older samples are overwritten: a long run reports the
recent window, and says how many frames it covers).
"""

from __future__ import annotations

import numpy as np

from .results import PoseBatch

#: name -> (start timestamp field, end timestamp field)
STAGE_SPANS = {
    "queue": ("t_capture_ns", "t_dequeued_ns"),
    "preprocess": ("t_dequeued_ns", "t_infer_start_ns"),
    "inference": ("t_infer_start_ns", "t_infer_end_ns"),
    "decode": ("t_infer_end_ns", "t_decoded_ns"),
    "predict": ("t_decoded_ns", "t_predicted_ns"),
    "emit": ("t_predicted_ns", "t_emitted_ns"),
    "end_to_end": ("t_capture_ns", "t_emitted_ns"),
}
PERCENTILES = (50, 90, 99)


class LatencyStats:
    """Collects per-frame stage durations in milliseconds."""

    def __init__(self, capacity: int = 1 << 20):
        self.capacity = capacity
        self.samples_ms = {name: np.zeros(capacity, np.float64) for name in STAGE_SPANS}
        self.count = 0  # frames seen in total

    def add(self, batch: PoseBatch) -> None:
        n = batch.n
        if n == 0:
            return
        pos = self.count % self.capacity
        rows = (np.arange(pos, pos + n) % self.capacity) if pos + n > self.capacity else slice(pos, pos + n)
        for name, (start, end) in STAGE_SPANS.items():
            t0 = getattr(batch, start)[:n]
            t1 = getattr(batch, end)[:n]
            self.samples_ms[name][rows] = (t1 - t0) * 1e-6
        self.count += n

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p90": ms, "p99": ms, "max": ms, "mean": ms}}`` over the stored window."""
        stored = min(self.count, self.capacity)
        out: dict[str, dict[str, float]] = {}
        for name, values in self.samples_ms.items():
            v = values[:stored]
            if stored == 0:
                out[name] = {f"p{p}": float("nan") for p in PERCENTILES} | {"max": float("nan"), "mean": float("nan")}
                continue
            pct = np.percentile(v, PERCENTILES)
            out[name] = {f"p{p}": float(x) for p, x in zip(PERCENTILES, pct)} | {"max": float(v.max()), "mean": float(v.mean())}
        return out

    def format_table(self) -> str:
        """A plain-text table of the summary, one stage per line."""
        rows = [f"{'stage (ms)':<12}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}"]
        for name, s in self.summary().items():
            rows.append(f"{name:<12}{s['p50']:>10.3f}{s['p90']:>10.3f}{s['p99']:>10.3f}{s['max']:>10.3f}")
        return "\n".join(rows)
