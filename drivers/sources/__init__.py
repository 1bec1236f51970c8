"""Frame sources: video files, OpenCV cameras, and a synthetic camera with ground truth.

:func:`open_source` turns a command-line source spec into a (not yet opened)
:class:`~.base.FrameSource`:

* ``video:PATH`` or a bare path to an existing file: a video file
  (a bare path to an image file — ``.png``, ``.jpg``, ... — gives a one-image source);
* ``camera:N`` with optional ``,width=W,height=H,fps=F``: OpenCV camera ``N``;
* ``synthetic`` or ``synthetic:WIDTHxHEIGHT@FPS`` with optional ``,seed=N,frames=N,noise=S,animals=N,crossings=0|1``:
  the synthetic mouse (endless unless ``frames`` is given), or N of them (paths that cross unless ``crossings=0``);
* ``basler:N``, ``basler:serial=S`` or ``basler:emulator`` with the camera options below: a Basler
  camera through pypylon (the ``basler`` extra; :mod:`.basler`);
* ``genicam:PATH.cti`` with optional ``,serial=S`` or ``,index=N`` and the camera options: any
  GenICam camera through harvesters and its maker's GenTL producer (the ``genicam`` extra; :mod:`.genicam`).

Camera options (docs/hardware.md): ``exposure_us=F, gain_db=F, fps=F, roi=WxH[+X+Y],
pixel_format=NAME, trigger=off|LineN, grab=latest|all, timeout_ms=F``, and for pylon's emulated
cameras ``emulator_images=DIR``.

``paced`` overrides whether file and synthetic sources release frames in real
time (default: video paced, synthetic not); cameras are always live.
``lossless`` makes Basler/GenICam cameras deliver every frame in order (``grab=all``) unless
their spec says ``grab=`` itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from rtpose.errors import ConfigError

from .base import FrameSource, SourceInfo
from .camera import CameraSource
from .images import ImageFilesSource
from .parallel_video import ParallelVideoSource
from .synthetic import SyntheticSource
from .video import VideoFileSource

__all__ = [
    "FrameSource",
    "SourceInfo",
    "VideoFileSource",
    "ParallelVideoSource",
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
    "synthetic:WIDTHxHEIGHT[@FPS][,seed=N,frames=N,noise=S,animals=N,crossings=0|1]",
    "basler:N|serial=S|emulator[,CAMERA OPTIONS]",
    "genicam:PRODUCER.cti[,serial=S|index=N][,CAMERA OPTIONS]",
)

#: Options of basler: and genicam: specs (see drivers/sources/genicam_features.CameraOptions).
CAMERA_OPTIONS: dict[str, type] = {"exposure_us": float, "gain_db": float, "fps": float, "roi": str,
                                   "pixel_format": str, "trigger": str, "grab": str, "timeout_ms": float}

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

_SIZE_RE = re.compile(r"^(\d+)x(\d+)(?:@(\d+(?:\.\d*)?|\.\d+))?$")
_ROI_RE = re.compile(r"^(\d+)x(\d+)(?:\+(\d+)\+(\d+))?$")


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
    opts = _options(spec, parts, {"seed": int, "frames": int, "noise": float, "animals": int, "crossings": int})
    if "seed" in opts:
        kwargs["seed"] = opts["seed"]
    if "frames" in opts:
        kwargs["n_frames"] = opts["frames"]
    if "noise" in opts:
        kwargs["noise_std"] = opts["noise"]
    if "animals" in opts:
        if opts["animals"] < 1:
            raise _bad(spec, "animals must be at least 1")
        kwargs["animals"] = opts["animals"]
    if "crossings" in opts:
        if opts["crossings"] not in (0, 1):
            raise _bad(spec, "crossings must be 0 or 1")
        kwargs["crossings"] = bool(opts["crossings"])
    if paced is not None:
        kwargs["paced"] = paced
    if kwargs.get("width", 640) < 32 or kwargs.get("height", 480) < 32:
        raise _bad(spec, "synthetic frames must be at least 32x32")
    if kwargs.get("fps", 30.0) <= 0:
        raise _bad(spec, "fps must be positive")
    if kwargs.get("n_frames", 0) < 0 or kwargs.get("noise_std", 0.0) < 0:
        raise _bad(spec, "frames and noise must not be negative")
    return SyntheticSource(**kwargs)


def _camera_options(spec: str, parts: list[str], lossless: bool, extra: dict[str, type] | None = None):
    """Parse camera options (and ``extra`` ones); returns ``(CameraOptions, extra values)``."""
    from .genicam_features import CameraOptions

    allowed = {**CAMERA_OPTIONS, **(extra or {})}
    opts = _options(spec, [p for p in parts if p.strip()], allowed)
    more = {k: opts.pop(k) for k in list(opts) if k not in CAMERA_OPTIONS and k != "emulator_images"}
    if "roi" in opts:
        m = _ROI_RE.match(opts["roi"].strip())
        if not m:
            raise _bad(spec, "roi must look like 640x480 or 640x480+16+8 (width x height + x offset + y offset)")
        opts["roi"] = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), int(m.group(4) or 0))
    if "grab" not in opts and lossless:
        opts["grab"] = "all"
    try:
        return CameraOptions(**opts).check(), more
    except ConfigError as exc:
        raise _bad(spec, str(exc)) from None


def _basler(spec: str, rest: str, lossless: bool) -> FrameSource:
    from .basler import BaslerSource

    first, *parts = rest.split(",")
    first = first.strip()
    options, _ = _camera_options(spec, parts, lossless, {"emulator_images": str})
    if first == "emulator":
        return BaslerSource(0, options=options, emulate=True)
    if first.startswith("serial="):
        serial = first[len("serial="):].strip()
        if not serial:
            raise _bad(spec, "no serial number after 'serial='")
        return BaslerSource(serial=serial, options=options)
    try:
        index = int(first)
    except ValueError:
        raise _bad(spec, f"Basler camera {first!r} is not an index, serial=NUMBER or emulator") from None
    if index < 0:
        raise _bad(spec, f"camera index {index} is negative")
    return BaslerSource(index, options=options)


def _genicam(spec: str, rest: str, lossless: bool) -> FrameSource:
    from .genicam import GenicamSource

    producer, *parts = rest.split(",")
    if not producer.strip():
        raise _bad(spec, "no GenTL producer after 'genicam:' (the camera maker's .cti file)")
    options, more = _camera_options(spec, parts, lossless, {"serial": str, "index": int})
    if "serial" in more and "index" in more:
        raise _bad(spec, "give serial= or index=, not both")
    if more.get("index", 0) < 0:
        raise _bad(spec, f"camera index {more['index']} is negative")
    return GenicamSource(producer.strip(), index=more.get("index"), serial=more.get("serial"), options=options)


def _file(path: Path, paced: bool | None) -> FrameSource:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageFilesSource([path])
    return VideoFileSource(path, paced=True if paced is None else paced)


def open_source(spec: str, *, paced: bool | None = None, lossless: bool = False) -> FrameSource:
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
    if sep and scheme == "basler":
        return _basler(spec, rest, lossless)
    if sep and scheme == "genicam":
        return _genicam(spec, rest, lossless)
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
