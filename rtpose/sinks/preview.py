"""A live window with the poses drawn on the camera frames (``rtpose run --preview``), off the inference path.

Three threads touch it, and only the preview's own thread draws or talks to the window:

- the capture thread hands every frame to :meth:`PreviewSink.frame_tap`'s tap, which
  copies it into one of a few preallocated slots (the oldest is overwritten);
- the inference thread calls :meth:`PreviewSink.write`, which copies each stream's
  newest pose into a one-deep slot (newest only: a pose not yet drawn is replaced and
  counted in ``dropped``) and wakes the preview thread — a lock held for a copy of
  K x 3 numbers, no allocation, no waiting on the window;
- the preview thread takes the newest pose, finds its frame among the slots (or the
  newest frame when it is already overwritten), draws it
  (:class:`~rtpose.viz.overlay.PoseOverlay`) and shows it.

A window that is slow (a remote X display, a busy desktop) only makes the preview skip
poses; inference never waits for it (tests/test_preview.py blocks a fake window and
checks the run goes on). Closing the window (or pressing q / Esc) ends the preview,
not the run.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Callable, Protocol, Sequence

import numpy as np

from ..errors import ConfigError
from ..results import PoseBatch, StreamInfo
from .base import Sink

#: Frames kept per stream for matching poses to the frame they came from.
FRAME_SLOTS = 4


class PreviewWindow(Protocol):
    def show(self, image_bgr: np.ndarray) -> bool:
        """Display the image; False once the user closed the window."""

    def close(self) -> None: ...


def display_problem(environ=None, build_information: str | None = None, platform: str | None = None) -> str | None:
    """Why no window can be shown here (None when one can): OpenCV built without a GUI (the
    ``opencv-python-headless`` wheel rtpose installs), or no display to show it on."""
    import cv2

    environ = os.environ if environ is None else environ
    info = cv2.getBuildInformation() if build_information is None else build_information
    platform = sys.platform if platform is None else platform
    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    if gui is None or gui.group(1).upper() == "NONE":
        return ("this OpenCV has no window support (rtpose installs opencv-python-headless, which has none). For "
                "--preview replace it in this environment: pip uninstall -y opencv-python-headless && pip install "
                "'opencv-python>=4.9' (both install the same cv2 folder: never keep both). Or leave out --preview "
                "and draw the poses afterwards with rtpose render VIDEO POSES.h5")
    if platform.startswith("linux") and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return ("no display: neither DISPLAY nor WAYLAND_DISPLAY is set (a headless machine, or ssh without -X). "
                "Run it at the rig's screen or with ssh -X, or leave out --preview and draw the poses afterwards "
                "with rtpose render VIDEO POSES.h5")
    return None


def check_display() -> None:
    """Raise ConfigError saying why ``--preview`` cannot open a window here."""
    problem = display_problem()
    if problem:
        raise ConfigError(f"--preview: {problem}")


class OpenCVWindow:
    """A ``cv2.imshow`` window; q or Esc (or closing it) ends the preview."""

    def __init__(self, title: str):
        import cv2

        self._cv2 = cv2
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, image_bgr: np.ndarray) -> bool:
        cv2 = self._cv2
        cv2.imshow(self.title, image_bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        try:
            self._cv2.destroyWindow(self.title)
        except Exception:  # already gone with the user's click
            pass


class _Stream:
    """One stream's hand-over slots (guarded by ``lock``) and drawing state (preview thread only)."""

    def __init__(self, info: StreamInfo, overlay):
        shape = (info.height, info.width, 3)
        self.lock = threading.Lock()
        self.frames = np.zeros((FRAME_SLOTS,) + shape, np.uint8)
        self.frame_index = np.full(FRAME_SLOTS, -1, np.int64)
        self.next_slot = 0
        self.pose = np.zeros((len(info.bodyparts), 3))
        self.pose_frame = -1
        self.pose_t_ns = 0
        self.fresh = False
        self.t0_ns: int | None = None
        self.canvas = np.zeros(shape, np.uint8)  # preview thread only
        self.drawn_pose = np.zeros_like(self.pose)
        self.overlay = overlay
        self.window = None


class PreviewSink(Sink):
    name = "preview"

    def __init__(self, window_factory: Callable[[str], PreviewWindow] = OpenCVWindow, *, pcutoff: float = 0.6,
                 skeleton: Sequence[tuple[int, int]] = (), trail: int = 15):
        self.window_factory = window_factory
        self.pcutoff = pcutoff
        self.skeleton = tuple(skeleton)
        self.trail = trail
        self.offered = 0  # poses handed over by write()
        self.shown = 0  # drawn and shown
        self.dropped = 0  # replaced by a newer pose before the preview thread took them
        self.unmatched = 0  # drawn on a newer frame than their own (their frame was already overwritten)
        self.window_closed = False
        self.error: BaseException | None = None
        self._streams: list[_Stream] = []
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._closed = False

    # ---------------------------------------------------------------- capture thread
    def frame_tap(self, stream: int) -> Callable[[np.ndarray, int, int], None]:
        def tap(frame: np.ndarray, frame_index: int, t_capture_ns: int) -> None:
            if stream >= len(self._streams):
                return
            st = self._streams[stream]
            with st.lock:
                slot = st.next_slot
                np.copyto(st.frames[slot], frame)
                st.frame_index[slot] = frame_index
                st.next_slot = (slot + 1) % FRAME_SLOTS

        return tap

    # ---------------------------------------------------------------- inference thread
    def open(self, streams: Sequence[StreamInfo]) -> None:
        from ..viz.overlay import PoseOverlay

        self._streams = [_Stream(info, PoseOverlay(info.bodyparts, info.width, info.height, skeleton=self.skeleton,
                                                   pcutoff=self.pcutoff, trail=self.trail, layout=info.layout))
                         for info in streams]
        self._thread = threading.Thread(target=self._run, args=([s.stream_id for s in streams],),
                                        name="rtpose-preview", daemon=True)
        self._thread.start()

    def write(self, batch: PoseBatch) -> None:
        streams = self._streams
        for i in range(batch.n):
            st = streams[batch.stream[i]]
            with st.lock:
                if st.fresh:
                    self.dropped += 1
                np.copyto(st.pose, batch.pose[i])
                st.pose_frame = int(batch.frame_index[i])
                st.pose_t_ns = int(batch.t_frame_ns[i])
                st.fresh = True
            self.offered += 1
        if batch.n:
            self._wake.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for st in self._streams:
            with st.lock:
                if st.fresh:  # handed over but never drawn
                    self.dropped += 1
                    st.fresh = False

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"shown": self.shown, "dropped": self.dropped}
        if self.unmatched:
            out["drawn_on_newer_frame"] = self.unmatched
        if self.window_closed:
            out["window_closed"] = True
        if self.error is not None:
            out["error"] = f"{type(self.error).__name__}: {self.error}"
        return out

    # ---------------------------------------------------------------- preview thread
    def _run(self, names: list[str]) -> None:
        try:
            for st, name in zip(self._streams, names):
                st.window = self.window_factory(f"rtpose preview: {name}")
            while not self._stop and not self.window_closed:
                self._wake.wait()
                self._wake.clear()
                for st in self._streams:
                    if self._stop or self.window_closed:
                        break
                    self._draw(st)
        except Exception as exc:  # a broken window must not end the run: reported in the summary
            self.error = exc
        finally:
            for st in self._streams:
                if st.window is not None:
                    try:
                        st.window.close()
                    except Exception:
                        pass

    def _draw(self, st: _Stream) -> None:
        with st.lock:
            if not st.fresh:
                return
            st.fresh = False
            np.copyto(st.drawn_pose, st.pose)
            frame_index, t_ns = st.pose_frame, st.pose_t_ns
            hits = np.flatnonzero(st.frame_index == frame_index)
            if len(hits):
                slot = int(hits[0])
            else:
                slot = (st.next_slot - 1) % FRAME_SLOTS
                self.unmatched += 1
            np.copyto(st.canvas, st.frames[slot])
        if st.t0_ns is None:
            st.t0_ns = t_ns
        st.overlay.draw(st.canvas, st.drawn_pose, frame_index=frame_index, t_s=(t_ns - st.t0_ns) * 1e-9)
        if st.window.show(st.canvas):
            self.shown += 1
        else:
            self.shown += 1
            self.window_closed = True
