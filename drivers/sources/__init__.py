"""Frame sources: video files, OpenCV cameras, and a synthetic camera with ground truth.

:func:`open_source` turns a command-line source spec into a (not yet opened)
:class:`~.base.FrameSource`:

* ``video:PATH`` or a bare path to an existing file: a video file
  (a bare path to an image file — ``.png``, ``.jpg``, ... — gives a one-image source);
* ``camera:N`` with optional ``,width=W,height=H,fps=F``: OpenCV camera ``N``;
* ``synthetic`` or ``synthetic:WIDTHxHEIGHT@FPS`` with optional ``,seed=N,frames=N,noise=S``:
  the synthetic mouse (endless unless ``frames`` is given).

``paced`` overrides whether file and synthetic sources release frames in real
time (default: video paced, synthetic not); cameras are always live.
"""

from __future__ import annotations

import re
from pathlib import Path

from rtpose.errors import ConfigError

from .base import FrameSource, SourceInfo
from .camera import CameraSource
from .images import ImageFilesSource
from .synthetic import SyntheticSource
from .video import VideoFileSource

__all__ = [
    "FrameSource",
    "SourceInfo",
    "VideoFileSource",
    "CameraSource",
    "ImageFilesSource",
    "SyntheticSource",
    "open_source",
    "SPEC_FORMS",
]

#: The accepted spec forms, listed in every spec error.
SPEC_FORMS = (
    "video:PATH",
    "PATH (an existing video or image file)",
    "camera:N[,width=W,height=H,fps=F]",
    "synthetic",
    "synthetic:WIDTHxHEIGHT[@FPS][,seed=N,frames=N,noise=S]",
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

_SIZE_RE = re.compile(r"^(\d+)x(\d+)(?:@(\d+(?:\.\d*)?|\.\d+))?$")


def _bad(spec: str, why: str) -> ConfigError:
    forms = "; ".join(SPEC_FORMS)
    return ConfigError(f"source {spec!r}: {why}. Accepted forms: {forms}")


def _options(spec: str, parts: list[str], allowed: dict[str, type]) -> dict:
    """Parse ``key=value`` parts into typed values."""
    out = {}
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise _bad(spec, f"unknown option {part!r} (options here: {', '.join(allowed)})")
        if key in out:
            raise _bad(spec, f"option {key!r} given twice")
        try:
            out[key] = allowed[key](value.strip())
        except ValueError:
            raise _bad(spec, f"option {key}={value!r} is not a valid {allowed[key].__name__}") from None
    return out


def _camera(spec: str, rest: str) -> CameraSource:
    index, *parts = rest.split(",")
    try:
        n = int(index)
    except ValueError:
        raise _bad(spec, f"camera index {index!r} is not an integer") from None
    if n < 0:
        raise _bad(spec, f"camera index {n} is negative")
    opts = _options(spec, parts, {"width": int, "height": int, "fps": float})
    if ("width" in opts) != ("height" in opts):
        raise _bad(spec, "give both width and height, or neither")
    return CameraSource(n, opts.get("width"), opts.get("height"), opts.get("fps"))


def _synthetic(spec: str, rest: str, paced: bool | None) -> SyntheticSource:
    parts = rest.split(",") if rest else []
    kwargs: dict = {}
    if parts and "=" not in parts[0]:
        m = _SIZE_RE.match(parts.pop(0).strip())
        if not m:
            raise _bad(spec, "the synthetic size must look like 640x480 or 640x480@30")
        kwargs["width"], kwargs["height"] = int(m.group(1)), int(m.group(2))
        if m.group(3) is not None:
            kwargs["fps"] = float(m.group(3))
    opts = _options(spec, parts, {"seed": int, "frames": int, "noise": float})
    if "seed" in opts:
        kwargs["seed"] = opts["seed"]
    if "frames" in opts:
        kwargs["n_frames"] = opts["frames"]
    if "noise" in opts:
        kwargs["noise_std"] = opts["noise"]
    if paced is not None:
        kwargs["paced"] = paced
    if kwargs.get("width", 640) < 32 or kwargs.get("height", 480) < 32:
        raise _bad(spec, "synthetic frames must be at least 32x32")
    if kwargs.get("fps", 30.0) <= 0:
        raise _bad(spec, "fps must be positive")
    if kwargs.get("n_frames", 0) < 0 or kwargs.get("noise_std", 0.0) < 0:
        raise _bad(spec, "frames and noise must not be negative")
    return SyntheticSource(**kwargs)


def _file(path: Path, paced: bool | None) -> FrameSource:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFilesSource([path])
    return VideoFileSource(path, paced=True if paced is None else paced)


def open_source(spec: str, *, paced: bool | None = None) -> FrameSource:
    """Build the source a spec names (not opened yet: use it as a context manager).

    Raises :class:`ConfigError` listing the accepted forms when ``spec`` is not one of them.
    A missing ``video:`` file or camera is reported by ``open()`` as a ``SourceError``.
    """
    spec = spec.strip()
    scheme, sep, rest = spec.partition(":")
    if sep and scheme == "video":
        if not rest:
            raise _bad(spec, "no path after 'video:'")
        return VideoFileSource(rest, paced=True if paced is None else paced)
    if sep and scheme == "camera":
        return _camera(spec, rest)
    if spec == "synthetic" or spec.startswith(("synthetic:", "synthetic,")):
        return _synthetic(spec, spec[len("synthetic:"):], paced)
    if not spec:
        raise _bad(spec, "empty source")
    path = Path(spec)
    if path.is_file():
        return _file(path, paced)
    if path.is_dir():
        raise _bad(spec, "is a directory, not a video file (to analyze a folder of images pass the image files)")
    if path.suffix or "/" in spec or "\\" in spec:
        raise _bad(spec, f"no such file: {path}")
    raise _bad(spec, "not a known source kind or an existing file")
