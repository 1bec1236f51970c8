"""Any GenICam camera (FLIR, Allied Vision, IDS, Basler, ...) through ``harvesters`` and the camera
maker's GenTL producer (a ``.cti`` file) — the optional ``genicam`` extra.

``GenicamSource("/opt/vendor/lib/Producer.cti", serial="...")`` (or ``index=N``) loads the
producer, opens the camera, applies the spec's options (the same
:class:`~.genicam_features.CameraOptions` as Basler cameras: exposure, gain, frame rate, ROI,
pixel format, hardware trigger) and grabs:

* ``grab=latest`` (default): the stream's ``StreamBufferHandlingMode`` is ``NewestOnly``, so each
  ``read_into`` gets the newest frame;
* ``grab=all``: ``OldestFirst`` with more buffers, every frame in order (lossless recording).

Every frame carries the producer's frame ID (``device_frame_id``; gaps are counted in
``frames_lost``) and the buffer's timestamp in ns (``device_timestamp_ns``). Errors are the same
typed ones as for Basler cameras: :class:`CameraNotFoundError`, :class:`CameraInUseError`,
:class:`CameraDisconnectedError`, plus a :class:`ConfigError` for a producer file that cannot be
loaded.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from rtpose.errors import (CameraDisconnectedError, CameraInUseError, CameraNotFoundError, ConfigError,
                           MissingDependencyError, SourceError)

from .base import NO_DEVICE_VALUE, FrameSource, SourceInfo
from .genicam_features import (CameraOptions, FrameCounter, NodeAccess, PixelConverter, apply_options,
                               frame_rate, trigger_on)

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'rtpose[genicam]' (installs harvesters and the genicam package)"
#: How long one wait for a frame lasts before re-checking a stop request.
WAIT_SLICE_S = 0.1
#: Buffers announced for ``grab=all`` (frames the pipeline has not taken yet).
LOSSLESS_BUFFERS = 64
_FIND_HINT = ("check the cable and power, that the camera maker's viewer sees the camera through this producer, "
              "and that the .cti belongs to the camera's transport (USB3 Vision, GigE Vision)")
_IN_USE_HINT = "close the other program using it (the maker's viewer, another rtpose run) and try again"
_IN_USE_NAMES = ("AccessDenied", "ResourceInUse", "Busy")

#: A GenTL producer is loaded once per process (a second ``Harvester`` on the same ``.cti`` sees no
#: camera), so the sources of one run that name the same producer share one: path -> [Harvester, users].
_PRODUCERS: dict[str, list] = {}
_PRODUCERS_LOCK = threading.Lock()


def _load_producer(path: Path, factory: Callable):
    """The process's Harvester for this producer (loaded on first use); pair with :func:`_drop_producer`."""
    key = str(path.resolve())
    with _PRODUCERS_LOCK:
        entry = _PRODUCERS.get(key)
        if entry is None:
            harvester = factory()
            try:
                harvester.add_file(key, check_existence=True, check_validity=True)
                harvester.update()
            except BaseException:
                harvester.reset()
                raise
            entry = _PRODUCERS[key] = [harvester, 0]
        entry[1] += 1
        return entry[0]


def _drop_producer(path: Path) -> None:
    key = str(path.resolve())
    with _PRODUCERS_LOCK:
        entry = _PRODUCERS.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _PRODUCERS[key]
            entry[0].reset()


def import_harvesters():
    """``(Harvester, genapi, gentl)``, or MissingDependencyError with the install command."""
    try:
        from genicam import genapi, gentl
        from harvesters.core import Harvester
    except ImportError as exc:
        raise MissingDependencyError(f"GenICam cameras need the harvesters package: {INSTALL_HINT}") from exc
    return Harvester, genapi, gentl


class GenapiNodes(NodeAccess):
    """The ``genicam`` package's node map behind the shared :class:`NodeAccess` interface."""

    def __init__(self, node_map, genapi):
        self.node_map = node_map
        self.genapi = genapi

    def node(self, name: str):
        try:
            node = self.node_map.get_node(name)
        except (self.genapi.LogicalErrorException, self.genapi.GenericException):
            return None
        if node is None or not self.genapi.is_available(node):
            return None
        return node

    def writable(self, node) -> bool:
        return bool(self.genapi.is_writable(node))

    def readable(self, node) -> bool:
        return bool(self.genapi.is_readable(node))

    def get(self, node):
        return node.value

    def set(self, node, value) -> None:
        try:
            node.value = value
        except self.genapi.GenericException as exc:
            raise ConfigError(f"the camera refused {node.node.name} = {value!r}: {_first_line(exc)}") from exc

    def symbolics(self, node) -> list[str]:
        return list(node.symbolics)

    def limits(self, node) -> tuple[float, float, float | None]:
        inc = None
        try:
            inc = node.inc
        except (AttributeError, self.genapi.GenericException):
            pass
        return node.min, node.max, inc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class GenicamSource(FrameSource):
    """A GenICam camera through a GenTL producer. ``read_into`` blocks until the next frame; it
    returns False only after :meth:`interrupt` (end of run), and raises on a camera failure.

    Args:
        producer: path to the camera maker's GenTL producer (``.cti``).
        index: position in the producer's device list; or
        serial: the camera's serial number (stable across re-plugging).
        options: see :class:`~.genicam_features.CameraOptions`.
        harvester_factory: builds the ``harvesters.core.Harvester``; tests wrap it to imitate faults
            (an unplug) the producer cannot produce on demand.
    """

    def __init__(self, producer: str | Path, index: int | None = None, serial: str | None = None,
                 options: CameraOptions | None = None, *, harvester_factory: Callable | None = None):
        if index is not None and serial is not None:
            raise ConfigError("give a GenICam camera's index or its serial number, not both")
        if index is None and serial is None:
            index = 0
        self.producer = Path(producer)
        name = f"genicam:{self.producer}" + (f",serial={serial}" if serial is not None else
                                              f",index={index}" if index else "")
        super().__init__(name)
        self.index = index
        self.serial = serial
        self.options = (options or CameraOptions()).check()
        if self.options.emulator_images is not None:
            raise ConfigError("emulator_images is for pylon's emulated Basler cameras (basler:emulator) only")
        self._harvester_factory = harvester_factory
        self._harvester = None
        self._acquirer = None
        self._gentl = None
        self._convert: PixelConverter | None = None
        self._counter = FrameCounter()
        self._interrupted = False
        self._n_read = 0
        self._timeout_ms = 1000.0
        self._triggered = False  # the camera waits for a trigger per frame: no frame for long is normal
        self.model = ""
        self.serial_number = ""
        self.pixel_format = ""

    # ------------------------------------------------------------------ open
    def _do_open(self) -> SourceInfo:
        Harvester, genapi, gentl = import_harvesters()
        self._gentl = gentl
        if not self.producer.is_file():
            raise ConfigError(f"{self.name}: GenTL producer {self.producer} does not exist; give the path of the "
                              "camera maker's .cti file (often listed in the GENICAM_GENTL64_PATH variable)")
        try:
            harvester = _load_producer(self.producer, self._harvester_factory or Harvester)
        except (OSError, gentl.GenericException, genapi.GenericException) as exc:
            raise ConfigError(f"{self.name}: {self.producer} cannot be loaded as a GenTL producer "
                              f"({_first_line(exc)}); is it the 64-bit .cti of the camera maker's SDK?") from exc
        self._harvester = harvester
        try:
            infos = harvester.device_info_list
            found = [f"{_prop(i, 'serial_number')} ({_prop(i, 'model')})" for i in infos]
            listing = f"found: {', '.join(found)}" if found else "the producer found no camera"
            if self.serial is not None:
                matches = [i for i, info in enumerate(infos) if _prop(info, "serial_number") == self.serial]
                if not matches:
                    raise CameraNotFoundError(self.name, f"no camera with serial number {self.serial}; {listing}. "
                                                         f"{_FIND_HINT}")
                position = matches[0]
            else:
                if self.index >= len(infos):
                    raise CameraNotFoundError(self.name, f"there is no camera {self.index}: {listing}. {_FIND_HINT}")
                position = self.index
            self.model = _prop(infos[position], "model")
            self.serial_number = _prop(infos[position], "serial_number")
            try:
                self._acquirer = harvester.create(position)
            except (gentl.GenericException, genapi.GenericException) as exc:
                raise self._open_error(exc) from exc
            info = self._configure(genapi)
            self._acquirer.start()
        except BaseException:
            self._release()
            raise
        self._counter = FrameCounter()
        self.frames_lost = 0
        self._n_read = 0
        self._interrupted = False
        return info

    def _open_error(self, exc: BaseException) -> SourceError:
        text = _first_line(exc)
        if any(word in type(exc).__name__ or word.lower() in text.lower() for word in _IN_USE_NAMES):
            return CameraInUseError(self.name, f"the camera is in use by another program or another source of this "
                                               f"run ({text}); {_IN_USE_HINT}")
        return SourceError(self.name, f"cannot open the camera: {text}; {_FIND_HINT}")

    def _configure(self, genapi) -> SourceInfo:
        opts = self.options
        acquirer = self._acquirer
        nodes = GenapiNodes(acquirer.remote_device.node_map, genapi)
        self.pixel_format = apply_options(nodes, opts)
        if acquirer.data_streams:
            stream = GenapiNodes(acquirer.data_streams[0].node_map, genapi)
            mode = stream.node("StreamBufferHandlingMode")
            wanted = "OldestFirst" if opts.grab == "all" else "NewestOnly"
            if mode is not None and stream.writable(mode) and wanted in stream.symbolics(mode):
                stream.set(mode, wanted)
            elif opts.grab != "all":
                log.warning("%s: the producer cannot keep only the newest frame (no StreamBufferHandlingMode "
                            "NewestOnly): frames are delivered oldest first", self.name)
        acquirer.num_buffers = LOSSLESS_BUFFERS if opts.grab == "all" else max(acquirer.num_buffers, 4)
        width, height = int(nodes.value("Width")), int(nodes.value("Height"))
        self._convert = PixelConverter(self.pixel_format, height, width)
        fps = frame_rate(nodes, opts.fps or 30.0)
        self._timeout_ms = opts.wait_timeout_ms(fps)
        self._triggered = trigger_on(nodes)
        return SourceInfo(width=width, height=height, fps=fps, n_frames=None, live=True)

    # ------------------------------------------------------------------ frames
    def interrupt(self) -> None:
        self._interrupted = True

    def _do_read_into(self, out: np.ndarray) -> bool:
        gentl = self._gentl
        waited_ms = 0.0
        while True:
            if self._interrupted:
                return False
            try:
                buffer = self._acquirer.try_fetch(timeout=WAIT_SLICE_S)
            except gentl.GenericException as exc:
                raise CameraDisconnectedError(
                    self.name, f"the camera stopped delivering after {self._n_read} frames ({_first_line(exc)}); "
                               "the frames processed until then are recorded. Check the cable, power and network, "
                               "then start again", frames=self._n_read) from exc
            if buffer is None:
                waited_ms += WAIT_SLICE_S * 1000
                if not self._triggered and waited_ms >= self._timeout_ms:
                    raise SourceError(self.name, f"no frame for {waited_ms:.0f} ms after {self._n_read} frames from a "
                                                 "free-running camera (unplugged? trigger mode left on?); check it "
                                                 "in the maker's viewer, or raise timeout_ms")
                continue
            with buffer:
                component = buffer.payload.components[0]
                self._convert.convert(component.data, out)
                self._numbers(buffer)
            self._n_read += 1
            return True

    def _numbers(self, buffer) -> None:
        gentl = self._gentl
        try:
            frame_id = int(buffer.module.frame_id)
        except gentl.GenericException:
            frame_id = NO_DEVICE_VALUE
        if frame_id != NO_DEVICE_VALUE:
            self.frames_lost += self._counter.update(frame_id)
        self.device_frame_id = frame_id
        try:
            self.device_timestamp_ns = int(buffer.timestamp_ns)
        except gentl.GenericException:  # no ns timestamp: ticks of the producer's clock, or none at all
            ticks = int(buffer.timestamp)  # 0 when the producer has no timestamps (viky)
            try:
                hz = int(buffer.timestamp_frequency)
            except Exception:  # harvesters 1.4.3's fallback itself fails (AttributeError) on some producers
                hz = 0
            self.device_timestamp_ns = int(ticks * 1e9 / hz) if ticks > 0 and hz > 0 else NO_DEVICE_VALUE

    # ------------------------------------------------------------------ close
    def _do_close(self) -> None:
        self._release()

    def _release(self) -> None:
        acquirer, self._acquirer = self._acquirer, None
        harvester, self._harvester = self._harvester, None
        steps = (acquirer.stop, acquirer.destroy) if acquirer is not None else ()
        if harvester is not None:
            steps += (lambda: _drop_producer(self.producer),)
        for step in steps:
            try:
                step()
            except Exception as exc:  # a camera that went away cannot be stopped cleanly
                log.debug("%s: %s failed: %s", self.name, getattr(step, "__name__", step), _first_line(exc))


def _prop(device_info, key: str) -> str:
    value = device_info.property_dict.get(key)
    return "" if value is None else str(value)
