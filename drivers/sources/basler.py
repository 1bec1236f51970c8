"""Basler cameras (USB3 Vision, GigE) through ``pypylon`` — the optional ``basler`` extra.

``BaslerSource(index=N)`` or ``BaslerSource(serial="40012345")`` opens the camera, applies the
spec's options (:class:`~.genicam_features.CameraOptions`: exposure, gain, frame rate, ROI,
pixel format, hardware trigger) and grabs with pylon's grab engine:

* ``grab=latest`` (default, live runs): pylon's ``LatestImageOnly`` strategy, so every
  ``read_into`` returns the newest frame; frames pylon skipped meanwhile are lost on purpose;
* ``grab=all`` (lossless recording, ``rtpose run --lossless``): ``OneByOne``, every frame in order
  (frames the pipeline cannot keep up with then pile up in pylon's buffers, and once those are
  full they are lost in the driver).

Each frame carries the camera's own frame number and timestamp (``device_frame_id``,
``device_timestamp_ns``): from chunk data (``ChunkFramecounter``/``ChunkCounterValue``,
``ChunkTimestamp``) when the camera has chunks, else from the grab result (``BlockID``,
``TimeStamp``). Gaps in the frame number are counted in ``frames_lost``. A camera without a
usable counter (pylon's emulation reports none) falls back to pylon's own count of skipped
images for ``frames_lost`` and leaves ``device_frame_id`` at -1.

Without a camera, set ``PYLON_CAMEMU=N`` (or use ``basler:emulator``): pylon then offers N
emulated cameras (serial numbers 0815-0000, 0815-0001, ...), which can serve image files
(``emulator_images=DIR``). Errors: :class:`CameraNotFoundError` (nothing matches, lists what
was found), :class:`CameraInUseError` (another program holds it), :class:`CameraDisconnectedError`
(lost mid-run; the recording keeps every frame processed until then).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from rtpose.errors import (CameraDisconnectedError, CameraInUseError, CameraNotFoundError, ConfigError,
                           MissingDependencyError, SourceError)

from .base import NO_DEVICE_VALUE, FrameSource, SourceInfo
from .genicam_features import (CameraOptions, FrameCounter, NodeAccess, PixelConverter, apply_options,
                               frame_rate, trigger_on)

log = logging.getLogger(__name__)

INSTALL_HINT = ("pip install 'rtpose[basler]' (installs pypylon, which brings Basler's pylon runtime and its camera "
                "emulation; no separate pylon installation is needed)")
#: pylon's "invalid value" for a grab result's BlockID (the emulation and some transports report it).
INVALID_BLOCK_ID = 2**64 - 1
#: How long one wait for a frame lasts before re-checking a stop request or an unplugged camera.
WAIT_SLICE_MS = 100
#: Buffers pylon queues for ``grab=all`` (frames the pipeline has not taken yet).
LOSSLESS_BUFFERS = 64
_FIND_HINT = ("check the cable and power, that the camera shows up in Basler's pylon Viewer, and (GigE) its IP "
              "configuration; to try rtpose without a camera use basler:emulator or set PYLON_CAMEMU=1")
_IN_USE_HINT = "close the other program using it (pylon Viewer, another rtpose run) and try again"
_IN_USE_WORDS = ("exclusively opened", "controlled by another application", "in use", "already open", "0xe1018006",
                 "access denied", "busy")


def import_pylon():
    """``(pylon, genicam)`` from pypylon, or MissingDependencyError with the install command."""
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise MissingDependencyError(f"Basler cameras need the pypylon package: {INSTALL_HINT}") from exc
    return pylon, genicam


class PylonNodes(NodeAccess):
    """pypylon's node map behind the shared :class:`NodeAccess` interface."""

    def __init__(self, nodemap, genicam):
        self.nodemap = nodemap
        self.genicam = genicam

    def node(self, name: str):
        try:
            node = self.nodemap.GetNode(name)
        except self.genicam.GenericException:
            return None
        if node is None or not self.genicam.IsAvailable(node):
            return None
        return node

    def writable(self, node) -> bool:
        return bool(self.genicam.IsWritable(node))

    def readable(self, node) -> bool:
        return bool(self.genicam.IsReadable(node))

    def get(self, node):
        return node.GetValue()

    def set(self, node, value) -> None:
        try:
            node.SetValue(value)
        except self.genicam.GenericException as exc:
            raise ConfigError(f"the camera refused {node.GetNode().GetName()} = {value!r}: "
                              f"{_first_line(exc)}") from exc

    def symbolics(self, node) -> list[str]:
        return list(node.GetSymbolics())

    def limits(self, node) -> tuple[float, float, float | None]:
        inc = None
        try:
            if node.HasInc():
                inc = node.GetInc()
        except (AttributeError, self.genicam.GenericException):
            pass
        return node.GetMin(), node.GetMax(), inc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BaslerSource(FrameSource):
    """A Basler camera. ``read_into`` blocks until the next frame; it returns False only after
    :meth:`interrupt` (end of run), and raises on a camera failure.

    Args:
        index: position in pylon's device list (``basler:0``); or
        serial: the camera's serial number (``basler:serial=40012345``): stable across re-plugging.
        options: exposure, gain, fps, ROI, pixel format, trigger, grab strategy, timeout.
        emulate: make pylon offer emulated cameras (sets ``PYLON_CAMEMU`` when it is not set).
        camera_factory: builds the ``pylon.InstantCamera`` from the pylon device; tests wrap it to
            imitate faults pylon's emulation cannot (a camera in use, an unplug).
    """

    def __init__(self, index: int | None = None, serial: str | None = None, options: CameraOptions | None = None,
                 *, emulate: bool = False, camera_factory: Callable | None = None):
        if (index is None) == (serial is None):
            raise ConfigError("give a Basler camera's index or its serial number (basler:0 or basler:serial=...)")
        if emulate:
            name = "basler:emulator" if index == 0 else f"basler:emulator{index}"
        else:
            name = f"basler:{index}" if serial is None else f"basler:serial={serial}"
        super().__init__(name)
        self.index = index
        self.serial = serial
        self.options = (options or CameraOptions()).check()
        self.emulate = emulate
        self._camera_factory = camera_factory
        self._camera = None
        self._pylon = self._genicam = None
        self._convert: PixelConverter | None = None
        self._counter = FrameCounter()
        self._interrupted = False
        self._n_read = 0
        self._timeout_ms = 1000.0
        self._triggered = False  # the camera waits for a trigger per frame: no frame for long is normal
        self._chunk_counter: str | None = None
        self._chunk_timestamp = False
        self._tick_ns = 1.0
        self.model = ""
        self.serial_number = ""
        self.pixel_format = ""
        self.emulated = False
        self.failed_buffers = 0  # incomplete frames the camera or link delivered (dropped, counted as lost)

    # ------------------------------------------------------------------ open
    def _do_open(self) -> SourceInfo:
        if self.emulate:
            n = max(int(os.environ.get("PYLON_CAMEMU", "0") or 0), (self.index or 0) + 1)
            os.environ["PYLON_CAMEMU"] = str(n)  # read by pylon's emulation whenever it lists devices
        pylon, genicam = self._pylon, self._genicam = import_pylon()
        tl = pylon.TlFactory.GetInstance()
        device_info = self._find(tl)
        try:
            device = tl.CreateDevice(device_info)
            camera = self._camera_factory(device) if self._camera_factory else pylon.InstantCamera(device)
        except genicam.GenericException as exc:
            raise self._open_error(exc) from exc
        try:
            camera.Open()
        except genicam.GenericException as exc:
            try:
                camera.DestroyDevice()
            except genicam.GenericException:
                pass
            raise self._open_error(exc) from exc
        self._camera = camera
        try:
            info = self._configure(camera, device_info)
            strategy = pylon.GrabStrategy_OneByOne if self.options.grab == "all" else pylon.GrabStrategy_LatestImageOnly
            if self.options.grab == "all":
                camera.MaxNumBuffer.SetValue(LOSSLESS_BUFFERS)
            camera.StartGrabbing(strategy, pylon.GrabLoop_ProvidedByUser)
        except BaseException:
            self._release()
            raise
        self._counter = FrameCounter()
        self.frames_lost = 0
        self._n_read = 0
        self._interrupted = False
        return info

    def _find(self, tl):
        devices = list(tl.EnumerateDevices())
        found = [f"{d.GetSerialNumber()} ({d.GetModelName()})" for d in devices]
        listing = f"found: {', '.join(found)}" if found else "pylon found no camera"
        if self.serial is not None:
            for d in devices:
                if d.GetSerialNumber() == self.serial:
                    return d
            raise CameraNotFoundError(self.name, f"no Basler camera with serial number {self.serial}; {listing}. "
                                                 f"{_FIND_HINT}")
        if self.emulate:
            devices = [d for d in devices if d.GetDeviceClass() == "BaslerCamEmu"]
        if self.index >= len(devices):
            raise CameraNotFoundError(self.name, f"there is no camera {self.index}: {listing}. {_FIND_HINT}")
        return devices[self.index]

    def _open_error(self, exc: BaseException) -> SourceError:
        text = _first_line(exc)
        if isinstance(exc, self._genicam.AccessException) or any(w in text.lower() for w in _IN_USE_WORDS):
            return CameraInUseError(self.name, f"the camera is in use by another program ({text}); {_IN_USE_HINT}")
        return SourceError(self.name, f"cannot open the camera: {text}; {_FIND_HINT}")

    def _configure(self, camera, device_info) -> SourceInfo:
        opts = self.options
        nodes = PylonNodes(camera.GetNodeMap(), self._genicam)
        self.model = device_info.GetModelName()
        self.serial_number = device_info.GetSerialNumber()
        self.emulated = device_info.GetDeviceClass() == "BaslerCamEmu"
        if opts.emulator_images is not None:
            self._serve_images(nodes, opts.emulator_images)
        self.pixel_format = apply_options(nodes, opts)
        self._setup_chunks(nodes)
        tick_hz = nodes.value("GevTimestampTickFrequency")
        self._tick_ns = 1e9 / float(tick_hz) if tick_hz else 1.0  # USB3 and SFNC 2 cameras count ns
        width, height = int(nodes.get(nodes.node("Width"))), int(nodes.get(nodes.node("Height")))
        self._convert = PixelConverter(self.pixel_format, height, width)
        fps = frame_rate(nodes, opts.fps or 30.0)
        self._timeout_ms = opts.wait_timeout_ms(fps)
        self._triggered = trigger_on(nodes)
        mode = f"trigger {opts.trigger or 'as set in the camera'}" if self._triggered else "free-running"
        log.info("%s: %s %s, %dx%d %s, %.1f FPS, %s", self.name, self.model, self.serial_number, width, height,
                 self.pixel_format, fps, mode)
        return SourceInfo(width=width, height=height, fps=fps, n_frames=None, live=True)

    def _serve_images(self, nodes: PylonNodes, images: str) -> None:
        if not self.emulated:
            raise ConfigError(f"emulator_images is for pylon's emulated cameras only, and {self.name} is a real "
                              f"{self.model}; leave the option out")
        path = Path(images).expanduser().resolve()
        if not path.exists():
            raise ConfigError(f"emulator_images={images}: no such file or folder")
        mode, name, test_image = nodes.node("ImageFileMode"), nodes.node("ImageFilename"), nodes.node("TestImageSelector")
        if mode is None or name is None:
            raise ConfigError("this pylon's camera emulation has no ImageFileMode/ImageFilename feature")
        if test_image is not None:
            nodes.set(test_image, "Off")  # otherwise the emulation keeps serving its test pattern
        nodes.set(name, str(path))
        nodes.set(mode, "On")

    def _setup_chunks(self, nodes: PylonNodes) -> None:
        """Ask for the frame counter and timestamp as chunk data where the camera has chunks."""
        self._chunk_counter, self._chunk_timestamp = None, False
        active = nodes.node("ChunkModeActive")
        if active is None or not nodes.writable(active):
            return
        nodes.set(active, True)
        selector = nodes.node("ChunkSelector")
        if selector is None or nodes.node("ChunkEnable") is None:  # pylon's emulation: chunk mode without chunks,
            nodes.set(active, False)                                 # and grabbing would then fail
            return
        offered = nodes.symbolics(selector)
        enable = nodes.node("ChunkEnable")
        for chunk, value_node in (("Framecounter", "ChunkFramecounter"), ("CounterValue", "ChunkCounterValue"),
                                  ("FrameID", "ChunkFrameID")):
            if chunk in offered:
                nodes.set(selector, chunk)
                nodes.set(enable, True)
                self._chunk_counter = value_node
                break
        if "Timestamp" in offered:
            nodes.set(selector, "Timestamp")
            nodes.set(enable, True)
            self._chunk_timestamp = True
        if self._chunk_counter is None and not self._chunk_timestamp:
            nodes.set(active, False)

    # ------------------------------------------------------------------ frames
    def interrupt(self) -> None:
        self._interrupted = True

    def _do_read_into(self, out: np.ndarray) -> bool:
        pylon, genicam, camera = self._pylon, self._genicam, self._camera
        waited_ms = 0.0
        while True:
            if self._interrupted:
                return False
            try:
                result = camera.RetrieveResult(WAIT_SLICE_MS, pylon.TimeoutHandling_Return)
            except genicam.GenericException as exc:
                raise self._grab_error(_first_line(exc)) from exc
            if result is None or not result.IsValid():
                if camera.IsCameraDeviceRemoved():
                    raise self._grab_error("the camera was removed")
                if not camera.IsGrabbing():
                    raise self._grab_error("pylon stopped grabbing")
                waited_ms += WAIT_SLICE_MS
                if not self._triggered and waited_ms >= self._timeout_ms:
                    raise SourceError(self.name, f"no frame for {waited_ms:.0f} ms after {self._n_read} frames from a "
                                                 "free-running camera; check its trigger settings (pylon Viewer) and "
                                                 "exposure, or raise timeout_ms")
                continue
            try:
                if not result.GrabSucceeded():  # an incomplete frame: lost, like a gap in the counter
                    self.failed_buffers += 1
                    if self._chunk_counter is None:  # (with chunk counters the next frame's gap counts it)
                        self.frames_lost += 1
                        if self._block_id_valid(result):
                            self.frames_lost += self._counter.update(int(result.GetBlockID()))
                    log.warning("%s: incomplete frame dropped: %s", self.name, result.GetErrorDescription())
                    continue
                with result.GetArrayZeroCopy() as frame:  # pylon's buffer, no copy
                    self._convert.convert(frame, out)
                    del frame  # pypylon checks that no reference outlives the block
                self._numbers(result)
            finally:
                result.Release()
            self._n_read += 1
            return True

    @staticmethod
    def _block_id_valid(result) -> bool:
        block_id = result.GetBlockID()
        return block_id != INVALID_BLOCK_ID

    def _numbers(self, result) -> None:
        """The frame's camera number and timestamp, and the frames lost before it."""
        frame_id = NO_DEVICE_VALUE
        if self._chunk_counter is not None and result.IsChunkDataAvailable():
            frame_id = int(result.GetChunkDataNodeMap().GetNode(self._chunk_counter).GetValue())
        elif self._block_id_valid(result):
            frame_id = int(result.GetBlockID())
        if frame_id != NO_DEVICE_VALUE:
            self.frames_lost += self._counter.update(frame_id)
        else:  # no camera counter: at least count what pylon itself skipped (LatestImageOnly)
            self.frames_lost += int(result.GetNumberOfSkippedImages())
        self.device_frame_id = frame_id
        if self._chunk_timestamp and result.IsChunkDataAvailable():
            ticks = int(result.GetChunkDataNodeMap().GetNode("ChunkTimestamp").GetValue())
        else:
            ticks = int(result.GetTimeStamp())
        self.device_timestamp_ns = int(ticks * self._tick_ns) if ticks > 0 else NO_DEVICE_VALUE

    def _grab_error(self, why: str) -> SourceError:
        camera = self._camera
        removed = False
        try:
            removed = bool(camera.IsCameraDeviceRemoved())
        except Exception:  # the camera object itself may be gone
            removed = True
        if removed:
            return CameraDisconnectedError(
                self.name, f"the camera was disconnected after {self._n_read} frames ({why}); the frames processed "
                           "until then are recorded. Check the cable, power and (GigE) network, then start again",
                frames=self._n_read)
        return SourceError(self.name, f"grabbing failed after {self._n_read} frames: {why}")

    # ------------------------------------------------------------------ close
    def _do_close(self) -> None:
        self._release()

    def _release(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        genicam = self._genicam
        for step in ("StopGrabbing", "Close", "DestroyDevice"):
            try:
                getattr(camera, step)()
            except genicam.GenericException as exc:  # an unplugged camera cannot be closed cleanly
                log.debug("%s: %s failed: %s", self.name, step, _first_line(exc))
