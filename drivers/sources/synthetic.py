"""A synthetic camera with exact ground truth, for tests and demos without hardware.

Each frame shows a dark, shaded ellipse (the "mouse body", darkest in a round
spot at its centre) moving on a light background along a smooth seeded path
(:mod:`.synthetic_path`), its long axis along its velocity, with a red disk at
the head end and a blue disk at the tail end. ``truth(i)`` gives the ``(3, 2)`` pixel positions of :data:`BODYPARTS`
(head disk centre, ellipse centre, tail disk centre) exactly as drawn: OpenCV
draws on a 1/16-pixel grid (``shift=4``) and the truth is on that same grid.

Frame ``i`` shows the path at ``t = i / fps`` seconds, so the same seed, size
and FPS always give the same frames (noise included: it is seeded per frame).
Frames are drawn straight into the caller's buffer. ``paced=True`` releases
them at ``fps`` like a camera (injectable clock/sleep, see :mod:`.pacing`).
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np

from rtpose.clock import Clock, monotonic_ns
from rtpose.errors import SourceError

from .base import FrameSource, SourceInfo
from .pacing import Pacer, Sleep
from .synthetic_path import SUBPIXEL, SUBPIXEL_SHIFT, MousePath

#: Ground-truth keypoints, in ``truth()`` row order.
BODYPARTS = ("head", "body", "tail")

#: Colours (BGR).
BACKGROUND_GREY = 200
HEAD_BGR = (40, 40, 220)  # red
TAIL_BGR = (220, 40, 40)  # blue
#: The body is shaded darker towards its centre: (fraction of the body size, grey level) ...
BODY_SHADES = ((1.0, 105), (0.72, 80), (0.48, 55))
#: ... and has a darkest round spot exactly at its centre (the "body" keypoint).
BODY_SPOT_GREY = 20


def _fixed(v: float) -> int:
    return int(round(float(v) * SUBPIXEL))


class SyntheticSource(FrameSource):
    """Endless (or ``n_frames`` long) synthetic mouse video with ground truth.

    Args:
        width, height: frame size in pixels (at least 32x32).
        fps: frame rate; frame ``i`` is the path at ``i / fps`` seconds.
        n_frames: number of frames, None for endless.
        seed: chooses the path (and the noise).
        paced: release frames at ``fps`` (live) instead of as fast as read.
        noise_std: standard deviation of added Gaussian pixel noise (0: none).
        clock, sleep: pacing clock (ns) and sleep (s); injectable for tests.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        n_frames: int | None = None,
        seed: int = 0,
        paced: bool = False,
        noise_std: float = 0.0,
        *,
        clock: Clock = monotonic_ns,
        sleep: Sleep = time.sleep,
    ):
        super().__init__(f"synthetic:{width}x{height}@{fps:g},seed={seed}")
        if not fps > 0:
            raise SourceError(self.name, f"fps must be positive, got {fps}")
        if n_frames is not None and n_frames < 0:
            raise SourceError(self.name, f"n_frames must be >= 0 or None (endless), got {n_frames}")
        if noise_std < 0:
            raise SourceError(self.name, f"noise_std must be >= 0, got {noise_std}")
        try:
            self.path = MousePath(width, height, seed)
        except ValueError as exc:
            raise SourceError(self.name, str(exc)) from exc
        self.width, self.height = int(width), int(height)
        self.frame_rate = float(fps)  # also before open() (``fps`` needs an open source)
        self.n_frames = n_frames
        self.seed = int(seed)
        self.paced = paced
        self.noise_std = float(noise_std)
        self._clock = clock
        self._sleep = sleep
        self._pacer: Pacer | None = None
        self._next = 0
        self._scratch: np.ndarray | None = None  # only for non-contiguous output buffers
        if noise_std > 0:
            from rtpose.memory import check_fits

            check_fits(f"source {self.name}: noise", {"noise buffer": self.height * self.width * 3 * 4},
                       "use a smaller frame size or no noise")
        self._noise = np.empty((self.height, self.width, 3), np.float32) if noise_std > 0 else None

    # -- ground truth ------------------------------------------------------------------

    def time_s(self, frame_index):
        """Path time of frame(s) ``frame_index``, in seconds."""
        return np.asarray(frame_index, dtype=np.float64) / self.frame_rate

    def truth(self, frame_index: int) -> np.ndarray:
        """``(3, 2)`` float64 pixel positions of head, body, tail in frame ``frame_index``."""
        return self.path.keypoints(self.time_s(frame_index))

    def truth_many(self, frame_indices) -> np.ndarray:
        """``(N, 3, 2)`` truth for many frames at once (e.g. to find frames with the body in a zone)."""
        return self.path.keypoints(self.time_s(np.asarray(frame_indices)))

    # -- drawing -----------------------------------------------------------------------

    def render(self, frame_index: int, out: np.ndarray) -> None:
        """Draw frame ``frame_index`` into ``out`` ((height, width, 3) uint8), whatever has been read."""
        if out.shape != (self.height, self.width, 3) or out.dtype != np.uint8:
            raise SourceError(self.name, f"buffer is {out.shape} {out.dtype}, source gives {(self.height, self.width, 3)} uint8")
        target = out
        if not out.flags.c_contiguous:  # OpenCV would draw into a copy
            if self._scratch is None:
                self._scratch = np.empty_like(out, order="C")
            target = self._scratch
        x, y, heading = self.path.at(self.time_s(frame_index))
        head, body, tail = self.path.keypoints_from(x, y, heading)
        g = self.path.geometry
        target.fill(BACKGROUND_GREY)
        centre = (_fixed(body[0]), _fixed(body[1]))
        angle_deg = math.degrees(float(heading))
        for scale, grey in BODY_SHADES:
            axes = (_fixed(g.semi_major * scale), _fixed(g.semi_minor * scale))
            cv2.ellipse(target, centre, axes, angle_deg, 0, 360, (grey, grey, grey), -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
        spot = (BODY_SPOT_GREY,) * 3
        cv2.circle(target, centre, _fixed(g.spot_radius), spot, -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
        cv2.circle(target, (_fixed(head[0]), _fixed(head[1])), _fixed(g.head_radius), HEAD_BGR, -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
        cv2.circle(target, (_fixed(tail[0]), _fixed(tail[1])), _fixed(g.tail_radius), TAIL_BGR, -1, cv2.LINE_AA, SUBPIXEL_SHIFT)
        if self._noise is not None:
            self._add_noise(frame_index, target)
        if target is not out:
            np.copyto(out, target)

    def _add_noise(self, frame_index: int, img: np.ndarray) -> None:
        noise = self._noise
        rng = np.random.Generator(np.random.PCG64([self.seed, int(frame_index)]))
        rng.standard_normal(dtype=np.float32, out=noise)
        noise *= self.noise_std
        np.add(noise, img, out=noise)
        np.rint(noise, out=noise)
        np.clip(noise, 0, 255, out=noise)
        np.copyto(img, noise, casting="unsafe")

    # -- FrameSource -------------------------------------------------------------------

    @property
    def next_index(self) -> int:
        """Index of the frame the next ``read_into`` delivers."""
        return self._next

    def _do_open(self) -> SourceInfo:
        self._next = 0
        if self.paced:
            self._pacer = Pacer(self.frame_rate, clock=self._clock, sleep=self._sleep)
        return SourceInfo(width=self.width, height=self.height, fps=self.frame_rate, n_frames=self.n_frames, live=self.paced)

    def _do_read_into(self, out: np.ndarray) -> bool:
        if self.n_frames is not None and self._next >= self.n_frames:
            return False
        self.render(self._next, out)
        if self._pacer is not None:
            self._pacer.wait_for(self._next)
        self._next += 1
        return True

    def _do_close(self) -> None:
        self._pacer = None
