"""Progress of a whole ``rtpose analyze``: the current video and all videos, with FPS and ETA.

:class:`Progress` is pure bookkeeping (times are arguments); :meth:`Progress.line`
renders one status line. The CLI prints it on stderr, rewritten in place on a
terminal, one line per update otherwise (logs of cluster jobs).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..cli.report import progress as bar


def _eta(remaining: int, fps: float) -> str:
    if remaining <= 0:
        return "0s"
    if fps <= 0:
        return "?"
    s = int(remaining / fps + 0.5)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


@dataclass
class Progress:
    """Frames done across videos. ``totals``: frames each job is expected to give (None: unknown)."""

    totals: list[int | None]
    done: list[int] = field(default_factory=list)
    t_start_s: float | None = None
    frames_this_command: int = 0  # analysed by this command (not skipped or resumed ones)

    def __post_init__(self) -> None:
        self.done = [0] * len(self.totals)

    @property
    def total(self) -> int:
        return sum(t for t in self.totals if t)

    def set_done(self, job: int, frames: int) -> None:
        self.done[job] = frames

    def overall_fps(self, now_s: float) -> float:
        if self.t_start_s is None or now_s <= self.t_start_s:
            return 0.0
        return self.frames_this_command / (now_s - self.t_start_s)

    def line(self, job: int, label: str, *, done: int, captured: int, processed: int, fps: float,
             elapsed_s: float, now_s: float, jobs: int = 1) -> str:
        """``processed``/``captured``/``fps``/``elapsed_s``: of this video's current run; ``done``: its frames
        on disk including an earlier interrupted run's. ``jobs``: videos ``job`` .. ``job + jobs - 1`` run
        together (``--videos-at-once``); ``done`` and the bar are then theirs together."""
        group = self.totals[job:job + jobs]
        total = None if any(t is None for t in group) else sum(group)
        head = bar(done, total) if total else f"{done} frames"
        text = (f"{head}  {elapsed_s:7.1f}s  captured {captured:6d}  processed {processed:6d}  {fps:6.1f} FPS"
                f"  ETA {_eta((total or 0) - done, fps) if total else '?'}")
        if len(self.totals) > 1:
            all_done = sum(self.done[:job]) + done + sum(self.done[job + jobs:])
            fps_all = self.overall_fps(now_s)
            which = f"video {job + 1}" if jobs == 1 else f"videos {job + 1}-{job + jobs}"
            text += (f"  | {which}/{len(self.totals)}, all: {all_done}/{self.total} frames"
                     f" {fps_all:6.1f} FPS ETA {_eta(self.total - all_done, fps_all)}")
        return text


def print_line(text: str, stream=None) -> None:
    stream = stream if stream is not None else sys.stderr
    stream.write(("\r" if stream.isatty() else "") + text + ("" if stream.isatty() else "\n"))
    stream.flush()
