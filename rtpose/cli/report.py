"""Human-readable status lines and run summaries for the CLI (stdout/stderr only)."""

from __future__ import annotations

import sys

from ..pipeline import RunSummary, Status


def progress(done: int, total: int) -> str:
    """``[####      ]  61% 1421/2330``: the percentage is rounded down, so 100 % means every frame."""
    fraction = min(done, total) / total
    return f"[{'#' * int(fraction * 20):<20}] {int(fraction * 100):3d}% {done}/{total}"


def status_line(status: Status, total_frames: int | None = None, stream=None, *, live: bool = True) -> None:
    """One line, rewritten in place: counts, FPS and (live) latency; a progress bar when the total is known.
    Offline there is no latency: frames wait in the queue by design, so it would only measure the queue."""
    stream = stream if stream is not None else sys.stderr  # looked up now: sys.stderr may have been replaced
    text = (f"{status.elapsed_s:7.1f}s  captured {status.captured:6d}  processed {status.processed:6d}  "
            f"dropped {status.dropped:5d}  {status.fps:7.1f} FPS")
    if live:
        text += f"  e2e p50 {status.latency_p50_ms:6.2f} ms"
    if total_frames:
        text = progress(status.processed + status.dropped, total_frames) + "  " + text
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
    execution = summary.execution or {}
    if execution.get("fallback"):
        lines.append(f"   provider fallback: asked for {execution['requested'][0]}, running on {execution['provider']}: "
                     f"{execution.get('reason') or 'ONNX Runtime gave no reason'}")
    if execution.get("tensorrt_engine"):
        lines.append(f"   TensorRT engine {execution['tensorrt_engine']}")
    for s in summary.streams:
        lost = (f"  + lost before capture {s.lost_before_capture} (gaps in the camera's frame counter)"
                if s.lost_before_capture else "")
        lines.append(f"   {s.stream_id}: captured {s.captured}  processed {s.processed}  dropped {s.dropped}{lost}")
    lines.append(f"   total: captured {summary.captured} = processed {summary.processed} + dropped {summary.dropped}"
                 f"   ({'OK' if summary.captured == summary.processed + summary.dropped else 'MISMATCH'})")
    if summary.live:
        lines.append(f"   {summary.processed} frames in {summary.duration_s:.2f} s = {summary.fps:.1f} FPS")
        lines.append("   latency per frame (ms):")
        lines.extend("   " + row for row in latency_table.splitlines())
    else:  # offline, frames queue by design: per-frame latency would measure the queue, throughput is what counts
        lines.append(f"   throughput: {summary.processed} frames in {summary.duration_s:.2f} s = {summary.fps:.1f} FPS")
    if summary.animals:  # multi-animal: the cost of each step beside the network, per frame
        costs = ", ".join(f"{k[:-len('_ms_per_frame')]} {v:.3f}" for k, v in summary.animals.items()
                          if k.endswith("_ms_per_frame"))
        lines.append(f"   animals: {summary.animals.get('animals_per_frame', 0):.2f} per frame; ms per frame: {costs}")
    for name, info in summary.sinks.items():
        if info:
            lines.append(f"   {name}: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if summary.lost_before_capture:
        lines.append(f"   all frames the cameras produced: {summary.captured + summary.lost_before_capture} = processed "
                     f"{summary.processed} + dropped {summary.dropped} + lost before capture "
                     f"{summary.lost_before_capture}")
    note = drop_note(summary)
    if note:
        lines.append(f"   {note}")
    if summary.stopped_by:
        lines.append(f"   stopped early by {summary.stopped_by}")
    return "\n".join(lines)


def drop_note(summary: RunSummary) -> str | None:
    """One line on why a live run dropped frames, and what to do; None when it dropped none.

    Compares the rate frames arrive at (the sources' frame rates, or captured /
    duration when higher) with the rate the pipeline can process them (batch
    size / mean time from taking a batch off the ring to emitting it)."""
    if not summary.live or summary.dropped == 0 or summary.captured == 0 or summary.duration_s <= 0:
        return None
    share = summary.dropped / summary.captured
    # The sources' frame rates, unless frames came faster (an unpaced file); captured / duration alone
    # under-reads a paced source: the run's duration also covers start-up and the last frames in flight.
    arrival_fps = max(sum(s.fps for s in summary.streams), summary.captured / summary.duration_s)
    busy_ms = sum(summary.latency_ms.get(stage, {}).get("mean", float("nan"))
                  for stage in ("preprocess", "inference", "decode", "predict", "emit"))
    if not busy_ms > 0:  # nothing processed, no timing to compare
        return f"dropped {share:.0%} of frames (live runs skip to the newest frame); none was processed to time it."
    capacity_fps = 1000.0 * summary.batch_size / busy_ms
    per = "per frame" if summary.batch_size == 1 else f"per batch of {summary.batch_size}"
    if capacity_fps < arrival_fps:
        return (f"dropped {share:.0%} of frames: processing takes {busy_ms:.1f} ms {per} (at most "
                f"{capacity_fps:.0f} FPS) and frames arrive at {arrival_fps:.0f} FPS, so live runs skip to the newest "
                "frame. To keep up: a smaller input (lower camera resolution), a GPU (--providers cuda), or "
                "rtpose analyze for a lossless pass over a video file.")
    return (f"dropped {share:.0%} of frames although processing keeps up on average ({busy_ms:.1f} ms {per}, "
            f"at most {capacity_fps:.0f} FPS, for {arrival_fps:.0f} FPS arriving): it fell behind at times, "
            "typically while other programs kept the CPU busy.")
