"""Short clips cut from the real openfield video (rtpose/data/m3v1mp4.mp4, see its README for the licence),
for the `rtpose analyze` tests: a full 2330-frame analysis takes ~30 s on a loaded 2-core machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VIDEO = Path(__file__).resolve().parents[1] / "rtpose" / "data" / "m3v1mp4.mp4"


def real_frames(n: int, start: int = 0, scale: float = 0.5) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(VIDEO))
    frames = []
    try:
        for i in range(start + n):
            ok, frame = cap.read()
            if not ok:
                break
            if i >= start:
                frames.append(cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                              if scale != 1 else frame)
    finally:
        cap.release()
    return np.stack(frames)


def write_clip(path: Path, n: int, start: int = 0, scale: float = 0.5) -> Path:
    """``n`` frames of the openfield video from ``start``, scaled, as a 30 fps MJPG .avi."""
    import cv2

    frames = real_frames(n, start, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def truncated_copy(src: Path, dst: Path) -> Path:
    """The first half of ``src``'s bytes (a copy interrupted half-way): the container still announces every frame."""
    data = src.read_bytes()
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: len(data) // 2])
    return dst
