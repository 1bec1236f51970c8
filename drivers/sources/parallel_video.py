"""One video decoded by several reader threads and delivered in order (``rtpose analyze --readers N``).

One OpenCV decoder runs at ~800 FPS on the openfield video, less than a GPU
analyses; several decoders on one file go faster, each on its own share of it.
:class:`ParallelVideoSource` is a :class:`~.base.FrameSource` like
:class:`~.video.VideoFileSource` (frames in order, by index, nothing lost, the
same typed errors, a truncated file ends with what could be decoded) whose
frames come from ``readers`` threads, each with its own
:class:`~.video.VideoFileSource`:

1. :class:`VideoIndex` reads the container's packets without decoding them
   (OpenCV's raw stream mode, milliseconds for thousands of frames): each
   frame's presentation timestamp (pts) in frame order, and which frames are
   keyframes (decodable without any earlier frame).
2. :func:`plan_segments` cuts the video into segments of at least
   :data:`MIN_SEGMENT_FRAMES` frames, each starting :data:`SEEK_BACKOFF_FRAMES`
   after a keyframe. Reader ``r`` decodes segments ``r, r + N, r + 2N, ...``
   into its own lossless :class:`~rtpose.ring.FrameRing`.
3. A reader starts each segment with :meth:`VideoFileSource.seek`: OpenCV
   seeks to the keyframe at or before 16 frames earlier and decodes forward
   (passing over the keyframe's 16 frames, which the previous segment's reader
   delivers); the landing frame's pts is checked instead of trusting OpenCV's
   frame numbering. Where that check fails the reader reopens the file and
   passes over frames with ``grab()`` from the start (slow but exact, counted
   in :attr:`ParallelVideoSource.seek_fallbacks`). Every frame a reader
   decodes is checked against the index's pts for its number; a mismatch is a
   :class:`~rtpose.errors.SourceError` (rerun with one reader), never a frame
   out of place.
4. ``read_into`` takes segment after segment from the rings in order and copies
   each frame into the caller's buffer (one copy, ~0.1 ms for 640x480).

Decoding from a keyframe gives the pictures of decoding from the file's start
(the tests compare every frame's hash for several codecs). A video whose index
cannot be used (timestamps missing or repeated, frame 0 not a keyframe, the
decoder's first frame not stamped as the container's) or that has a single
group of pictures is read by one reader of the same code.

Memory: each reader's ring holds up to one segment, ``READ_AHEAD_BYTES`` for all
readers at most; a group of pictures longer than its ring still decodes
correctly, with less overlap between readers. Reader threads are started by the
first ``read_into``, from the thread that reads (the pipeline's capture
thread), so on Linux they inherit its CPU priority (:mod:`rtpose.offline.reader`).
"""

from __future__ import annotations

import bisect
import os
import threading
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from rtpose.errors import ConfigError, SourceError
from rtpose.memory import check_fits
from rtpose.ring import FrameRing, RingClosed

from .base import FrameSource, SourceInfo
from .video import VideoFileSource

#: Frames OpenCV's frame seek backs off before the target (cap_ffmpeg_impl.hpp, ``delta = 16``): it
#: seeks to the keyframe at or before ``target - 16`` and decodes forward. A segment starting exactly at a
#: keyframe would cost decoding the whole previous group of pictures (measured on the openfield video:
#: 375 ms to seek to keyframe 797, 28 ms to frame 813); starting 16 frames after it costs 16 decodes.
#: Another value in another OpenCV stays exact (the landing is checked), only slower.
SEEK_BACKOFF_FRAMES = 16
#: A segment holds at least this many frames: each costs one seek and up to 16 frames decoded twice
#: (for videos where every frame is a keyframe, e.g. MJPG, at most 1/8 more decoding).
MIN_SEGMENT_FRAMES = 128
#: Frames decoded ahead by all readers together, in bytes (1 GiB: 4 readers x 290 frames of 640x480).
READ_AHEAD_BYTES = 1 << 30
#: Ring slots of a source that ends up with one reader.
SINGLE_READER_SLOTS = 4

#: Most decoding threads per video that the automatic ``--readers`` chooses (one OpenCV reader decodes the
#: openfield video at ~800 FPS on one core: 4 reach a GPU's ~3000 FPS).
MAX_AUTO_READERS = 4


def default_readers(cores: int, inference_threads: int) -> int:
    """Decoding threads per video when ``--readers`` is not given: 1 while the model's threads and one
    reader fill the cores (``cores <= inference_threads + 1``: a second reader would only take cores
    from the model), else the cores the model leaves free, at most :data:`MAX_AUTO_READERS`. Pure."""
    if cores <= inference_threads + 1:
        return 1
    return max(1, min(cores - inference_threads, MAX_AUTO_READERS))


@dataclass(frozen=True)
class VideoIndex:
    """Presentation timestamps in frame order and the keyframes' frame numbers, from the packets alone."""

    pts: np.ndarray  # int64, one per frame, increasing
    keyframes: tuple[int, ...]  # frame numbers, increasing, starting with 0

    @property
    def n_frames(self) -> int:
        return len(self.pts)

    @classmethod
    def scan(cls, path: str | os.PathLike) -> "VideoIndex | None":
        """Read the packets of ``path``'s video stream without decoding them. None when they cannot
        place frames exactly: no packets, timestamps missing or repeated, or frame 0 not a keyframe."""
        pts: list[int] = []
        key_pts: list[int] = []
        try:
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
        except cv2.error:  # a backend without the raw stream mode: read with one reader
            return None
        try:
            if not cap.isOpened():
                return None
            while cap.grab():
                p = int(cap.get(cv2.CAP_PROP_PTS))
                pts.append(p)
                if cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME):
                    key_pts.append(p)
        except cv2.error:
            return None
        finally:
            cap.release()
        return cls.from_packets(pts, key_pts)

    @classmethod
    def from_packets(cls, pts: list[int], key_pts: list[int]) -> "VideoIndex | None":
        """The index of packets with these timestamps (decoding order) of which ``key_pts`` are keyframes. Pure."""
        ordered = np.sort(np.asarray(pts, np.int64))
        if len(ordered) == 0 or ordered[0] < 0 or np.any(np.diff(ordered) <= 0):
            return None
        keyframes = tuple(sorted(int(np.searchsorted(ordered, p)) for p in set(key_pts)))
        if not keyframes or keyframes[0] != 0:
            return None
        return cls(ordered, keyframes)

    def keyframe_at_or_before(self, frame: int) -> int:
        return self.keyframes[max(bisect.bisect_right(self.keyframes, frame) - 1, 0)]


def plan_segments(keyframes: tuple[int, ...], start: int, n_frames: int, min_frames: int = MIN_SEGMENT_FRAMES,
                  backoff: int = SEEK_BACKOFF_FRAMES) -> list[tuple[int, int | None]]:
    """Cut frames ``start`` .. end into ``(first, stop)`` segments starting ``backoff`` frames after a keyframe,
    each at least ``min_frames`` long; the last one's ``stop`` is None (to the end of what decodes: container
    counts are estimates). Pure."""
    cuts = [k + backoff for k in keyframes if k > 0 and start < k + backoff < n_frames]
    segments: list[tuple[int, int | None]] = []
    first = start
    for k in cuts:
        if k - first >= min_frames and n_frames - k >= min_frames:
            segments.append((first, k))
            first = k
    segments.append((first, None))
    return segments


def decoder_threads(readers: int) -> int:
    """FFmpeg decoding threads of each of ``readers`` decoders: the usable cores shared out (at least 1).
    OpenCV's default gives every decoder threads for all cores; several readers then contend for them
    (2 readers on 2 loaded cores: 4.1 ms CPU per frame with 1 thread each, 4.3-5.1 ms with 2). FFmpeg's
    output does not depend on its thread count."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // readers)


class ParallelVideoSource(FrameSource):
    """An unpaced video decoded by ``readers`` threads, delivered in order. See the module docstring.

    Args:
        path: the video file.
        readers: decoding threads (>= 1).
        capture_factory: builds each reader's ``cv2.VideoCapture`` (tests wrap the real one); default:
            FFmpeg's own decoding threads set to the usable cores / ``readers`` (:func:`decoder_threads`).
        min_segment_frames, read_ahead_bytes: see :data:`MIN_SEGMENT_FRAMES`, :data:`READ_AHEAD_BYTES`.
    """

    def __init__(self, path: str | os.PathLike, readers: int, *,
                 capture_factory: Callable[[str], cv2.VideoCapture] | None = None,
                 min_segment_frames: int = MIN_SEGMENT_FRAMES, read_ahead_bytes: int = READ_AHEAD_BYTES):
        if not (isinstance(readers, int) and readers >= 1):
            raise ConfigError(f"readers must be a whole number >= 1, got {readers!r}")
        if capture_factory is None:
            threads = decoder_threads(readers)
            capture_factory = lambda p: cv2.VideoCapture(p, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])  # noqa: E731
        self._first = VideoFileSource(path, paced=False, capture_factory=capture_factory)
        super().__init__(self._first.name)
        self.path = self._first.path
        self.requested_readers = readers
        #: readers actually used (1 when the video cannot be cut: see the module docstring); set by the first read
        self.readers = 1
        #: segment starts where the checked seek failed and the reader re-decoded from the start
        self.seek_fallbacks = 0
        self.index: VideoIndex | None = None
        self._capture_factory = capture_factory
        self._min_segment_frames = min_segment_frames
        self._read_ahead_bytes = read_ahead_bytes
        self._start = 0
        self._segments: list[tuple[int, int | None]] = []
        self._rings: list[FrameRing] = []
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException | None] = []
        self._wakeup = threading.Event()
        self._stop = threading.Event()
        self._seg = 0
        self._next_index = 0

    # ------------------------------------------------------------------ set-up
    def _do_open(self) -> SourceInfo:
        info = self._first.open()
        try:
            self.index = VideoIndex.scan(self.path) if self.requested_readers > 1 else None
            if self.index is not None and self._first.frame_pts != self.index.pts[0]:
                self.index = None  # the decoder numbers frames otherwise than the container: one reader
        except BaseException:
            self._first.close()
            raise
        self._start = self._next_index = self._seg = 0
        self._threads, self._rings, self._errors = [], [], []
        self._stop.clear()
        return info

    def skip(self, n: int) -> int:
        """Start at frame ``n`` (before the first ``read_into``): ``rtpose analyze --frame-range`` or a resumed
        video. Returns how many frames were passed over (fewer when the video is shorter)."""
        if self._info is None:
            raise SourceError(self.name, "source is not open; call open() first")
        if self._threads:
            raise SourceError(self.name, "skip() must come before the first read_into()")
        if self.index is None:
            return self._first.skip(n)  # one reader: grab() over them, as VideoFileSource does
        self._start = min(max(n, 0), self.index.n_frames)
        self._next_index = self._start
        return self._start

    def _plan(self) -> None:
        if self.index is None:
            self._segments = [(self._first.next_index, None)]
        else:
            self._segments = plan_segments(self.index.keyframes, self._start, self.index.n_frames,
                                           self._min_segment_frames)
        self.readers = max(1, min(self.requested_readers, len(self._segments)))
        frame_bytes = int(np.prod(self.frame_shape))
        slots = SINGLE_READER_SLOTS  # one reader: the pipeline's own ring does the buffering
        if self.readers > 1:
            longest = max((self.index.n_frames if stop is None else stop) - first for first, stop in self._segments)
            slots = max(2, min(longest, self._read_ahead_bytes // (self.readers * frame_bytes)))
            check_fits(f"{self.readers} video readers", {"read-ahead frames": self.readers * slots * frame_bytes},
                       "use fewer readers (--readers)")
        self._rings = [FrameRing(self.frame_shape, slots=slots, policy="lossless", wakeup=self._wakeup)
                       for _ in range(self.readers)]
        self._errors = [None] * self.readers
        self._threads = [threading.Thread(target=self._read_segments, args=(r,), name=f"rtpose-reader-{r}",
                                          daemon=True) for r in range(self.readers)]
        self._seg = 0
        self._next_index = self._segments[0][0]

    # ------------------------------------------------------------------ readers
    def _read_segments(self, r: int) -> None:
        ring = self._rings[r]
        decoder: VideoFileSource | None = self._first if r == 0 else None
        try:
            if decoder is None:
                decoder = VideoFileSource(self.path, paced=False, capture_factory=self._capture_factory)
                decoder.open()
            for first, stop in self._segments[r::self.readers]:
                decoder = self._position(decoder, first)
                frame = first
                while stop is None or frame < stop:
                    if self._stop.is_set():  # interrupted or closed: no further segment either
                        return
                    slot = ring.write_slot()  # waits while the consumer is behind; RingClosed when it left
                    if not decoder.read_into(ring.frames[slot]):
                        return  # the end of what decodes: the consumer ends the stream here
                    if self.index is not None and (frame >= self.index.n_frames
                                                   or decoder.frame_pts != self.index.pts[frame]):
                        raise SourceError(
                            self.name, f"parallel decoding found frame {frame} out of place (its timestamp is not "
                                       "the container's); analyse this video with one reader (--readers 1)")
                    ring.publish(slot, frame, 0)
                    frame += 1
        except RingClosed:
            pass
        except Exception as exc:  # raised by read_into() in the consumer's thread, after the frames before it
            self._errors[r] = exc
        finally:
            if decoder is not None and decoder is not self._first:
                decoder.close()
            ring.close_writer()

    def _position(self, decoder: VideoFileSource, frame: int) -> VideoFileSource:
        """``decoder`` (or a reopened one) whose next frame is ``frame``, exactly."""
        if decoder.next_index == frame:
            return decoder
        # OpenCV decodes from the keyframe at or before frame - 16: seek if that is past where we are
        if frame < self.index.n_frames and (frame < decoder.next_index or self.index.keyframe_at_or_before(
                frame - SEEK_BACKOFF_FRAMES) > decoder.next_index):
            if not decoder.seek(frame, int(self.index.pts[frame])):
                self.seek_fallbacks += 1
                decoder.close()
                decoder.open()  # at frame 0: grab() from there, as a sequential read
        decoder.skip(frame - decoder.next_index)
        if decoder.next_index != frame:
            raise SourceError(self.name, f"the video ends before frame {frame}, which its index lists; "
                                         "analyse it with one reader (--readers 1)")
        return decoder

    # ------------------------------------------------------------------ consumer
    def _do_read_into(self, out: np.ndarray) -> bool:
        if not self._threads:
            self._plan()
            for thread in self._threads:
                thread.start()
        while self._seg < len(self._segments) and not self._stop.is_set():
            r = self._seg % self.readers
            ring = self._rings[r]
            closed = ring.writer_closed  # read before has_unread(): a reader publishes, then closes
            if ring.has_unread():
                seq, _ = ring.try_acquire(1)
                slot = ring.slot_of(seq)
                assert ring.frame_index[slot] == self._next_index, "parallel reader out of order"
                np.copyto(out, ring.frames[slot])
                ring.release(1)
                self._next_index += 1
                if self._next_index == self._segments[self._seg][1]:
                    self._seg += 1
                return True
            if closed:  # this segment ended early: the end of the video, or a reader's error
                if self._errors[r] is not None:
                    raise self._errors[r]
                break
            self._wakeup.clear()
            if not (ring.has_unread() or ring.writer_closed or self._stop.is_set()):
                self._wakeup.wait()
        self._seg = len(self._segments)
        return False

    @property
    def next_index(self) -> int:
        return self._next_index

    def interrupt(self) -> None:
        self._stop.set()
        self._wakeup.set()

    def _do_close(self) -> None:
        self._stop.set()
        self._wakeup.set()
        for ring in self._rings:
            ring.close_reader()  # readers waiting for space end
        for thread in self._threads:
            if thread.ident is not None:
                thread.join()
        self._threads = []
        self._first.close()
