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
