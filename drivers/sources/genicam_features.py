"""What Basler (pypylon) and other GenICam cameras (harvesters) share: the camera options of a
source spec, how they are applied to a camera's standard features (GenICam SFNC names), how
a frame in the camera's pixel format becomes a BGR frame, and how the camera's own frame
counter is turned into a count of lost frames.

The two drivers reach the camera's node map through different Python bindings, so each wraps
it in a small :class:`NodeAccess` adapter; everything here works on that adapter only.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from rtpose.errors import ConfigError

#: Grab strategies: ``latest`` keeps only the newest frame in the driver (live, lowest latency; older
#: frames are skipped and counted as lost), ``all`` delivers every frame in order (lossless recording).
GRAB_STRATEGIES = ("latest", "all")

#: Pixel formats a frame can be converted from, with the OpenCV conversion to BGR (None: already BGR).
#: GenICam names the Bayer pattern by its first two pixels (``BayerRG``: row 0 is R G R G), OpenCV by
#: the second row's (its ``BayerBG`` is the same layout), so the codes look swapped but are right.
PIXEL_FORMATS: dict[str, int | None] = {
    "BGR8": None,
    "BGR8Packed": None,
    "RGB8": cv2.COLOR_RGB2BGR,
    "RGB8Packed": cv2.COLOR_RGB2BGR,
    "BGRa8": cv2.COLOR_BGRA2BGR,
    "BGRA8Packed": cv2.COLOR_BGRA2BGR,
    "RGBa8": cv2.COLOR_RGBA2BGR,
    "Mono8": cv2.COLOR_GRAY2BGR,
    "BayerRG8": cv2.COLOR_BayerBG2BGR,
    "BayerBG8": cv2.COLOR_BayerRG2BGR,
    "BayerGR8": cv2.COLOR_BayerGB2BGR,
    "BayerGB8": cv2.COLOR_BayerGR2BGR,
}
#: Without a ``pixel_format`` option: the camera's current format if it is convertible, else the first
#: of these the camera offers (colour before Bayer before mono; no conversion is cheapest).
PREFERRED_FORMATS = ("BGR8", "BGR8Packed", "RGB8", "RGB8Packed", "BGRa8", "BGRA8Packed", "RGBa8", "BayerRG8", "BayerBG8", "BayerGR8", "BayerGB8",
                     "Mono8")


@dataclass(frozen=True)
class CameraOptions:
    """Options of a ``basler:`` or ``genicam:`` spec (None: leave the camera's setting as it is).

    ``roi`` is ``(width, height, offset_x, offset_y)`` in sensor pixels. ``trigger`` is "off"
    (free-running) or an input line ("Line1"...): one frame per rising edge on that line; None keeps
    the trigger setting the camera has once opened (pylon's default configuration switches Basler
    cameras to free-running; GenICam cameras keep what their user set says).
    ``grab`` is one of :data:`GRAB_STRATEGIES` (None: ``latest``). ``timeout_ms``: how long a
    free-running camera may deliver nothing before the run stops with an error (None: 1 s or 5 frame
    periods, whichever is longer); a triggered camera waits for its trigger indefinitely.
    ``emulator_images``: a folder or image file an *emulated* camera serves (pylon's ImageFilename).
    """

    exposure_us: float | None = None
    gain_db: float | None = None
    fps: float | None = None
    roi: tuple[int, int, int, int] | None = None
    pixel_format: str | None = None
    trigger: str | None = None
    grab: str | None = None
    timeout_ms: float | None = None
    emulator_images: str | None = None

    @property
    def triggered(self) -> bool:
        return self.trigger is not None and self.trigger.lower() != "off"

    def check(self) -> "CameraOptions":
        """Raise ConfigError for values no camera accepts (the camera checks the rest at open)."""
        for name in ("exposure_us", "fps", "timeout_ms"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value} must be a positive number")
        if self.gain_db is not None and not math.isfinite(self.gain_db):
            raise ConfigError(f"gain_db={self.gain_db} must be a finite number of dB")
        if self.grab is not None and self.grab not in GRAB_STRATEGIES:
            raise ConfigError(f"grab={self.grab!r} is not one of {', '.join(GRAB_STRATEGIES)}")
        if self.pixel_format is not None and self.pixel_format not in PIXEL_FORMATS:
            raise ConfigError(f"pixel_format={self.pixel_format!r} cannot be converted to BGR frames; "
                              f"use one of {', '.join(PIXEL_FORMATS)}")
        if self.roi is not None and (self.roi[0] <= 0 or self.roi[1] <= 0 or self.roi[2] < 0 or self.roi[3] < 0):
            raise ConfigError(f"roi={self.roi} needs a positive width and height and offsets >= 0")
        return self

    def wait_timeout_ms(self, fps: float) -> float:
        if self.timeout_ms is not None:
            return self.timeout_ms
        return max(1000.0, 5000.0 / fps) if fps > 0 else 1000.0


class NodeAccess(ABC):
    """A camera's GenICam node map, whatever the binding. ``node`` returns None for a missing feature."""

    @abstractmethod
    def node(self, name: str): ...

    @abstractmethod
    def writable(self, node) -> bool: ...

    @abstractmethod
    def readable(self, node) -> bool: ...

    @abstractmethod
    def get(self, node): ...

    @abstractmethod
    def set(self, node, value) -> None: ...

    @abstractmethod
    def symbolics(self, node) -> list[str]: ...

    @abstractmethod
    def limits(self, node) -> tuple[float, float, float | None]:
        """(min, max, increment or None) of a number feature."""

    def first(self, *names: str):
        """The first of ``names`` the camera has (e.g. ``ExposureTime`` or the older ``ExposureTimeAbs``)."""
        for name in names:
            node = self.node(name)
            if node is not None:
                return node
        return None

    def value(self, *names: str, default=None):
        node = self.first(*names)
        if node is None or not self.readable(node):
            return default
        return self.get(node)


def _set(access: NodeAccess, names: tuple[str, ...], value, what: str) -> None:
    node = access.first(*names)
    if node is None:
        raise ConfigError(f"the camera has no {what} setting ({' / '.join(names)}); leave that option out")
    if not access.writable(node):
        raise ConfigError(f"the camera's {names[0]} cannot be set now (read-only; another setting such as an "
                          f"automatic mode or a running acquisition may lock it)")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, inc = access.limits(node)
        if not lo <= value <= hi:
            raise ConfigError(f"{what} {value:g} is outside what this camera accepts ({lo:g} .. {hi:g})")
        if inc and inc > 1 and (value - lo) % inc:
            raise ConfigError(f"{what} {value:g} is not allowed: this camera takes {lo:g} .. {hi:g} in steps of {inc:g}")
    access.set(node, value)


def _set_enum(access: NodeAccess, name: str, value: str, *, required: bool = True) -> bool:
    node = access.node(name)
    if node is None or not access.writable(node):
        if required:
            raise ConfigError(f"the camera has no writable {name}; leave the option that needs it out")
        return False
    choices = access.symbolics(node)
    if value not in choices:
        if required:
            raise ConfigError(f"the camera's {name} has no {value!r}; it offers {', '.join(choices)}")
        return False
    access.set(node, value)
    return True


def choose_pixel_format(access: NodeAccess, wanted: str | None) -> str:
    """Set (or pick) a pixel format this module can convert; return it."""
    node = access.node("PixelFormat")
    if node is None:
        raise ConfigError("the camera has no PixelFormat feature; rtpose cannot tell how to read its frames")
    offered = access.symbolics(node)
    current = access.get(node)
    if wanted is None:
        if current in PIXEL_FORMATS:
            return current
        wanted = next((f for f in PREFERRED_FORMATS if f in offered), None)
        if wanted is None:
            raise ConfigError(f"the camera offers no pixel format rtpose converts (it offers {', '.join(offered)}; "
                              f"rtpose reads {', '.join(PIXEL_FORMATS)})")
    aliases = {"BGRa8": ("BGRa8", "BGRA8Packed"), "BGRA8Packed": ("BGRA8Packed", "BGRa8")}.get(
        wanted, (wanted, wanted[:-6]) if wanted.endswith("Packed") else (wanted, wanted + "Packed"))
    name = next((a for a in aliases if a in offered), None)
    if name is None:
        usable = [f for f in offered if f in PIXEL_FORMATS]
        raise ConfigError(f"pixel_format={wanted} is not offered by this camera; it offers {', '.join(usable) or 'none'} "
                          "of the formats rtpose converts")
    if name != current:
        if not access.writable(node):
            raise ConfigError("the camera's PixelFormat cannot be changed now")
        access.set(node, name)
    return name


def apply_options(access: NodeAccess, opts: CameraOptions) -> str:
    """Apply the options (None ones are left alone) in an order cameras accept; return the pixel format.

    Raises ConfigError naming the option and what the camera accepts instead.
    """
    if opts.roi is not None:
        width, height, x, y = opts.roi
        for name in ("OffsetX", "OffsetY"):  # first to 0, so that any width/height fits
            node = access.node(name)
            if node is not None and access.writable(node):
                access.set(node, 0)
        _set(access, ("Width",), int(width), "roi width")
        _set(access, ("Height",), int(height), "roi height")
        if x:
            _set(access, ("OffsetX",), int(x), "roi x offset")
        if y:
            _set(access, ("OffsetY",), int(y), "roi y offset")
    pixel_format = choose_pixel_format(access, opts.pixel_format)
    if opts.exposure_us is not None:
        _set_enum(access, "ExposureAuto", "Off", required=False)
        _set_enum(access, "ExposureMode", "Timed", required=False)
        _set(access, ("ExposureTime", "ExposureTimeAbs"), float(opts.exposure_us), "exposure_us")
    if opts.gain_db is not None:
        _set_enum(access, "GainAuto", "Off", required=False)
        _set(access, ("Gain", "GainAbs"), float(opts.gain_db), "gain_db")
    if opts.fps is not None:
        enable = access.node("AcquisitionFrameRateEnable")
        if enable is not None and access.writable(enable):
            access.set(enable, True)
        _set(access, ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), float(opts.fps), "fps")
    selector = access.node("TriggerSelector")
    if selector is not None and access.writable(selector) and "FrameStart" in access.symbolics(selector):
        access.set(selector, "FrameStart")
    if opts.triggered:
        _set_enum(access, "TriggerMode", "On")
        _set_enum(access, "TriggerSource", opts.trigger)
        _set_enum(access, "TriggerActivation", "RisingEdge", required=False)
    elif opts.trigger is not None:
        _set_enum(access, "TriggerMode", "Off")  # trigger=off: free-running
    return pixel_format


def trigger_on(access: NodeAccess) -> bool:
    """Whether the camera waits for a trigger for each frame (set by ``trigger=`` or left on in the camera)."""
    node = access.node("TriggerMode")
    return node is not None and access.readable(node) and access.get(node) == "On"


def frame_rate(access: NodeAccess, fallback: float) -> float:
    """The rate the camera will deliver at (its resulting rate when it reports one)."""
    for names in (("ResultingFrameRate", "ResultingFrameRateAbs"), ("AcquisitionFrameRate", "AcquisitionFrameRateAbs")):
        value = access.value(*names)
        if value is not None and math.isfinite(float(value)) and float(value) > 0:
            return float(value)
    return fallback


class PixelConverter:
    """Turns one frame in the camera's pixel format into the caller's BGR buffer, in place when the
    buffer is C-contiguous (one scratch buffer otherwise, allocated on first need)."""

    def __init__(self, pixel_format: str, height: int, width: int):
        if pixel_format not in PIXEL_FORMATS:
            raise ConfigError(f"pixel format {pixel_format} cannot be converted to BGR")
        self.pixel_format = pixel_format
        self.code = PIXEL_FORMATS[pixel_format]
        self.channels = (4 if pixel_format.lower().startswith(("bgra", "rgba")) else
                         3 if pixel_format.startswith(("BGR", "RGB")) else 1)
        self.shape = (height, width, self.channels) if self.channels > 1 else (height, width)
        self._scratch: np.ndarray | None = None

    def convert(self, src: np.ndarray, out: np.ndarray) -> None:
        """``src``: the frame as the camera sent it, any shape with ``height*width*channels`` uint8."""
        if src.shape != self.shape:
            src = src.reshape(self.shape)
        if self.code is None:
            np.copyto(out, src)
            return
        target = out
        if not out.flags.c_contiguous:
            if self._scratch is None or self._scratch.shape != out.shape:
                self._scratch = np.empty(out.shape, np.uint8)
            target = self._scratch
        result = cv2.cvtColor(src, self.code, dst=target)
        if result is not out:
            np.copyto(out, result)


class FrameCounter:
    """Counts the frames a camera's own frame counter says were lost between delivered frames.

    ``update(frame_id)`` per delivered frame; ``lost`` is the running total. A counter that goes
    backwards (a 16-bit GigE Vision block ID wrapping, a camera reset) starts a new sequence and
    counts nothing: the loss across it is unknown, and ``resets`` says how often that happened.
    """

    def __init__(self):
        self.last: int | None = None
        self.lost = 0
        self.resets = 0

    def update(self, frame_id: int) -> int:
        """Return how many frames were lost just before this one."""
        gap = 0
        if self.last is not None:
            if frame_id > self.last:
                gap = frame_id - self.last - 1
            else:
                self.resets += 1
        self.last = frame_id
        self.lost += gap
        return gap
