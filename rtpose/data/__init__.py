"""Data files shipped inside the package (the demo video); see README.md here for attribution."""

from __future__ import annotations

from pathlib import Path

from ..errors import SourceError

DEMO_VIDEO_NAME = "m3v1mp4.mp4"


def demo_video_path() -> Path:
    """Path of the bundled open-field mouse video (640x480, 30 fps, 2330 frames).

    Raises :class:`SourceError` if the installation lacks it (package data not installed).
    """
    path = Path(__file__).resolve().with_name(DEMO_VIDEO_NAME)
    if not path.is_file():
        raise SourceError(
            f"video:{path}",
            "the bundled demo video is missing from this installation; reinstall rtpose "
            "(`pip install --force-reinstall rtpose`) or pass your own video",
        )
    return path


def demo_video_frames(n: int):
    """The first ``n`` frames of the bundled video, BGR uint8 ``(n, 480, 640, 3)`` as OpenCV decodes them
    (for benchmarks and checks; raises :class:`SourceError` if none can be read)."""
    path = demo_video_path()
    frames = read_video_frames(path, n)
    if not len(frames):
        raise SourceError(f"video:{path}", "no frame could be read from the bundled demo video")
    return frames


def read_video_frames(path, n: int):
    """Up to the first ``n`` frames of the video ``path``, BGR uint8 ``(m, H, W, 3)``, ``m <= n`` (fewer if the
    video is shorter; ``(0,)`` if none can be read)."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return np.ascontiguousarray(np.stack(frames)) if frames else np.zeros((0,), np.uint8)
