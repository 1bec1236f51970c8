"""Video files decoded by the GPU's hardware video decoder (NVDEC): ``rtpose analyze --decode nvdec``.

On a GPU machine the CPU's H.264 decoding, not the network, limits offline
throughput: one OpenCV decoder gives ~800 FPS of the openfield video per core
(4.3 ms of CPU per 640x480 frame on this project's 2-core machine), while the
bundled model infers several thousand FPS on an H100. NVDEC decodes on the
GPU's own video engine and leaves the CPU free.

:class:`NvdecVideoSource` is a :class:`~.base.FrameSource` like
:class:`~.video.VideoFileSource` (frames in order, nothing lost, the same typed
errors, offline only) whose frames come from NVIDIA's maintained Python binding
`PyNvVideoCodec <https://pypi.org/project/PyNvVideoCodec/>`_ (extra ``nvdec``):
its ``ThreadedDecoder`` decodes ahead on a thread of its own, converts to
interleaved RGB on the GPU and hands frames over in host memory. The source
takes one frame per call and copies it at once into the caller's buffer as BGR
(the engine's frame convention), before asking for the next: the binding does
not document how long a handed-out host buffer stays valid while its thread
decodes ahead, so none is kept.

NVDEC converts YUV to RGB with its own kernel, not FFmpeg's, so pixels can
differ from OpenCV's decoding by a few levels and poses by a fraction of a
pixel: ``latency_tests/gpu_check.py`` measures both the speed and that
difference. Decoding starts at the first frame; ``skip`` decodes and drops
frames (frame-exact, for ``--frame-range`` and resuming).

The binding sits behind :class:`HostFrameDecoder` (``next_batch``, ``close``),
built by ``decoder_factory``; the tests pass a fake that decodes with OpenCV.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from rtpose.errors import MissingDependencyError, SourceError

from .base import FrameSource, SourceInfo

#: Frames the decoder decodes ahead (its own thread and buffer).
PREFETCH_FRAMES = 16
INSTALL_HINT = "pip install 'rtpose[nvdec]' (NVIDIA's PyNvVideoCodec; needs an NVIDIA GPU and driver)"


class HostFrameDecoder(Protocol):
    """A video decoder handing over RGB frames in host memory, in order."""

    width: int
    height: int
    fps: float
    num_frames: int  # from the container; 0 if unknown

    def next_batch(self, n: int) -> Sequence[np.ndarray]:
        """Up to ``n`` next frames, ``(H, W, 3)`` uint8 RGB, valid until the next call; empty at the end."""

    def close(self) -> None: ...


class PyNvVideoCodecDecoder:
    """:class:`HostFrameDecoder` on PyNvVideoCodec's ``ThreadedDecoder`` (host memory, interleaved RGB)."""

    def __init__(self, path: str, *, gpu_id: int = 0, prefetch: int = PREFETCH_FRAMES):
        try:
            import PyNvVideoCodec as nvc
        except ImportError as exc:
            raise MissingDependencyError(f"--decode nvdec needs PyNvVideoCodec ({exc}); {INSTALL_HINT}") from exc
        self.version = getattr(nvc, "__version__", "?")
        self._name = f"video:{path}"
        try:
            self._decoder = nvc.ThreadedDecoder(path, prefetch, gpu_id=gpu_id, use_device_memory=False,
                                                output_color_type=nvc.OutputColorType.RGB)
            meta = self._decoder.get_stream_metadata()
        except Exception as exc:  # the binding raises RuntimeError and its own types
            raise SourceError(self._name, f"NVDEC cannot decode it ({type(exc).__name__}: {exc}); use "
                              "--decode cpu (no NVIDIA GPU or driver, or a codec this GPU's NVDEC lacks)") from exc
        self.width, self.height = int(meta.width), int(meta.height)
        self.fps, self.num_frames = float(meta.average_fps), int(meta.num_frames)
        self._frames: list = []  # the binding's frames of the last batch: they own the host buffers handed out

    def next_batch(self, n: int) -> Sequence[np.ndarray]:
        frames = self._decoder.get_batch_frames(n)
        size = self.height * self.width * 3
        views = []
        for frame in frames:
            if frame.framesize() != size:
                raise SourceError(self._name, f"a decoded frame holds {frame.framesize()} bytes, not the {size} of a "
                                  f"{self.width}x{self.height} RGB frame (the video changes size?); use --decode cpu")
            buf = (ctypes.c_uint8 * size).from_address(frame.GetPtrToPlane(0))
            views.append(np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3))
        self._frames = frames
        return views

    def close(self) -> None:
        self._frames = []
        end = getattr(self._decoder, "end", None)
        if end is not None:
            end()


class NvdecVideoSource(FrameSource):
    """Frames of a video file decoded by NVDEC, as fast as the consumer reads (offline analysis).

    Args:
        path: the video file.
        gpu_id: the GPU whose decoder to use.
        decoder_factory: ``(path) -> HostFrameDecoder``; default :class:`PyNvVideoCodecDecoder`.
    """

    def __init__(self, path: str | os.PathLike, *, gpu_id: int = 0,
                 decoder_factory: Callable[[str], HostFrameDecoder] | None = None):
        self.path = Path(path)
        super().__init__(f"video:{self.path}")
        self._factory = decoder_factory or (lambda p: PyNvVideoCodecDecoder(p, gpu_id=gpu_id))
        self._decoder: HostFrameDecoder | None = None
        self._pending: Sequence[np.ndarray] = ()
        self._pos = 0
        self._next_index = 0
        self._version: str | None = None

    @property
    def decoding(self) -> str:
        """What decodes the frames, for the run summary and the recording (kept after ``close``)."""
        return "nvdec" + (f" (PyNvVideoCodec {self._version})" if self._version else "")

    def _do_open(self) -> SourceInfo:
        if not self.path.is_file():
            raise SourceError(self.name, "file not found; check the path (relative paths start from the current directory)")
        decoder = self._factory(str(self.path))
        try:
            if decoder.width <= 0 or decoder.height <= 0:
                raise SourceError(self.name, f"NVDEC reports frame size {decoder.width}x{decoder.height}; use --decode cpu")
            fps = decoder.fps if decoder.fps > 0 and np.isfinite(decoder.fps) else 0.0
            if not fps:
                raise SourceError(self.name, f"the container reports no usable frame rate ({decoder.fps}); re-encode "
                                  "it with one, e.g. `ffmpeg -i in -r 30 out.mp4`")
            self._decoder, self._pending, self._pos, self._next_index = decoder, (), 0, 0
            self._version = getattr(decoder, "version", None)
            if not self._fill():  # decode the first frame now: an undecodable file fails at open, not mid-run
                raise SourceError(self.name, "NVDEC decoded no frame; the file is corrupt or empty (check it with "
                                  "`ffprobe`), or use --decode cpu")
        except BaseException:
            self._decoder = None
            decoder.close()
            raise
        n = decoder.num_frames
        return SourceInfo(width=decoder.width, height=decoder.height, fps=fps, n_frames=n if n > 0 else None,
                          live=False)

    def _fill(self) -> bool:
        """Make sure a decoded frame is pending; False at the end of the stream."""
        if self._pos < len(self._pending):
            return True
        self._pending, self._pos = self._decoder.next_batch(1), 0  # copied before the next call (docstring)
        return len(self._pending) > 0

    def _do_read_into(self, out: np.ndarray) -> bool:
        if not self._fill():
            return False
        rgb = self._pending[self._pos]
        if rgb.shape != out.shape:
            raise SourceError(self.name, f"frame {self._next_index} is {rgb.shape[1]}x{rgb.shape[0]} but the video "
                              f"started at {out.shape[1]}x{out.shape[0]}; re-encode it to one size")
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=out)
        self._pos += 1
        self._next_index += 1
        return True

    def skip(self, n: int) -> int:
        """Pass over the next ``n`` frames (decoded and dropped: frame-exact); returns how many there were."""
        if self._decoder is None:
            raise SourceError(self.name, "source is not open; call open() first")
        skipped = 0
        while skipped < n and self._fill():
            take = min(n - skipped, len(self._pending) - self._pos)
            self._pos += take
            skipped += take
        self._next_index += skipped
        return skipped

    @property
    def next_index(self) -> int:
        """Frame number (from 0) of the frame the next ``read_into`` returns."""
        return self._next_index

    def _do_close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        self._pending = ()
