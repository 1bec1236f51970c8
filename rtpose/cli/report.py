"""Human-readable status lines and run summaries for the CLI (stdout/stderr only)."""

from __future__ import annotations

import sys

from ..pipeline import RunSummary, Status


def status_line(status: Status, total_frames: int | None = None, stream=None) -> None:
    """One line, rewritten in place: counts, FPS, latency; a progress bar when the total is known."""
    stream = stream if stream is not None else sys.stderr  # looked up now: sys.stderr may have been replaced
    text = (f"{status.elapsed_s:7.1f}s  captured {status.captured:6d}  processed {status.processed:6d}  "
            f"dropped {status.dropped:5d}  {status.fps:7.1f} FPS  e2e p50 {status.latency_p50_ms:6.2f} ms")
    if total_frames:
        done = min(status.processed + status.dropped, total_frames) / total_frames
        bar = "#" * int(done * 20)
        text = f"[{bar:<20}] {done:4.0%} " + text
    stream.write(("\r" if stream.isatty() else "") + text + ("" if stream.isatty() else "\n"))
    stream.flush()


def format_summary(summary: RunSummary, latency_table: str) -> str:
    mode = "live (newest frame)" if summary.live else "offline (lossless)"
    lines = [
        "",
        f"== rtpose summary: {mode}, provider {summary.provider}"
        + (f" ({summary.model_settings})" if summary.model_settings else "") + f", batch {summary.batch_size}"
        + (", stopped by user" if summary.interrupted else ""),
    ]
    for s in summary.streams:
        lines.append(f"   {s.stream_id}: captured {s.captured}  processed {s.processed}  dropped {s.dropped}")
    lines.append(f"   total: captured {summary.captured} = processed {summary.processed} + dropped {summary.dropped}"
                 f"   ({'OK' if summary.captured == summary.processed + summary.dropped else 'MISMATCH'})")
    lines.append(f"   {summary.processed} frames in {summary.duration_s:.2f} s = {summary.fps:.1f} FPS")
    lines.append("   latency per frame (ms):")
    lines.extend("   " + row for row in latency_table.splitlines())
    for name, info in summary.sinks.items():
        if info:
            lines.append(f"   {name}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return "\n".join(lines)
