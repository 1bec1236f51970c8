"""A labelled copy of a video: every frame, with its pose drawn (``rtpose render``).

Frames are read in order and written in order, one output frame per input frame;
a frame without a pose row (a live run's dropped frames, frames past the end of
the poses) is written with its stamp saying ``no pose``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import RecordingError
from ..recording.video import CODECS
from .overlay import PoseOverlay


@dataclass
class RenderStats:
    frames: int  # frames written (= frames of the video)
    with_pose: int  # of which had a pose row
    seconds: float  # wall time of the whole loop
    video_fps: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def realtime_factor(self) -> float:
        """How many times faster than the video plays (> 1: faster than real time)."""
        return self.fps / self.video_fps if self.video_fps > 0 else float("nan")


def poses_by_frame(frames: np.ndarray, pose: np.ndarray, n_video_frames: int) -> np.ndarray:
    """(n_video_frames, K, 3) with row f = the pose of frame f, NaN where there is none."""
    dense = np.full((n_video_frames, pose.shape[1], 3), np.nan)
    inside = (frames >= 0) & (frames < n_video_frames)
    dense[frames[inside]] = pose[inside]
    return dense


def render_video(video: str | Path, out: str | Path, frames: np.ndarray, pose: np.ndarray, overlay_factory:
                 Callable[[int, int], PoseOverlay], *, on_progress: Callable[[int, int], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> RenderStats:
    """Write ``out`` (.mp4 mp4v or .avi MJPG): ``video`` with the poses (rows ``frames[i]`` -> ``pose[i]``)
    drawn by ``overlay_factory(width, height)``."""
    out = Path(out)
    if out.suffix not in CODECS:
        raise RecordingError(f"{out}: use a .mp4 (mp4v) or .avi (MJPG) file name")
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise RecordingError(f"cannot open video {video}; check the path (OpenCV reads .mp4, .avi, ...)")
    writer = None
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS)) or 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        n_rows = max(count, int(frames.max()) + 1 if len(frames) else 0)
        dense = poses_by_frame(frames, pose, n_rows)
        overlay = overlay_factory(width, height)
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*CODECS[out.suffix]), fps, (width, height))
        if not writer.isOpened():
            raise RecordingError(f"cannot open {out} for writing video; check the folder and the codec")
        image = np.empty((height, width, 3), np.uint8)
        t0 = clock()
        index = with_pose = 0
        while True:
            ok, image = capture.read(image)
            if not ok:
                break
            row = dense[index] if index < len(dense) else None
            has = row is not None and bool(np.isfinite(row[:, 0]).any())
            with_pose += has
            overlay.draw(image, row if has else None, frame_index=index, t_s=index / fps)
            writer.write(image)
            index += 1
            if on_progress is not None and index % 100 == 0:
                on_progress(index, count)
        seconds = clock() - t0
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if index == 0:
        raise RecordingError(f"{video} gave no frames; is it a readable video?")
    return RenderStats(frames=index, with_pose=with_pose, seconds=seconds, video_fps=fps)
