"""A synthetic camera with exact ground truth, for tests and demos without hardware.

Each frame shows a dark, shaded ellipse (the "mouse body", darkest in a round
spot at its centre) moving on a light background along a smooth seeded path
(:mod:`.synthetic_path`), its long axis along its velocity, with a red disk at
the head end and a blue disk at the tail end. ``truth(i)`` gives the ``(3, 2)`` pixel positions of :data:`BODYPARTS`
(head disk centre, ellipse centre, tail disk centre) exactly as drawn: OpenCV
draws on a 1/16-pixel grid (``shift=4``) and the truth is on that same grid.

Several animals (``animals=N``): each has its own seeded path
(:func:`.synthetic_path.animal_paths`; animal 0's is the single mouse's), all drawn alike, animal 0
first and animal ``N-1`` last (on top). With ``crossings`` (the default) their paths are made to meet,
so bodies overlap; ``truth(i)`` is then ``(N, 3, 2)`` (row = identity) and ``visible(i)`` ``(N, 3)``
says which keypoints are not covered by an animal drawn on top (occluded ones are False).

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
from .synthetic_path import SUBPIXEL, SUBPIXEL_SHIFT, MousePath, animal_paths, covered

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
        animals: number of animals (1: the single mouse, whose API and frames are unchanged).
        crossings: with several animals, make their paths meet (see :func:`.synthetic_path.animal_paths`).
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
        animals: int = 1,
        crossings: bool = True,
        clock: Clock = monotonic_ns,
        sleep: Sleep = time.sleep,
    ):
        name = f"synthetic:{width}x{height}@{fps:g},seed={seed}"
        if animals != 1:
            name += f",animals={animals}" + ("" if crossings else ",crossings=0")
        super().__init__(name)
        if int(animals) != animals or animals < 1:
            raise SourceError(self.name, f"animals must be a whole number >= 1, got {animals}")
        if not fps > 0:
            raise SourceError(self.name, f"fps must be positive, got {fps}")
        if n_frames is not None and n_frames < 0:
            raise SourceError(self.name, f"n_frames must be >= 0 or None (endless), got {n_frames}")
        if noise_std < 0:
            raise SourceError(self.name, f"noise_std must be >= 0, got {noise_std}")
        try:
            self.paths: list[MousePath] = animal_paths(width, height, seed, int(animals), bool(crossings))
        except ValueError as exc:
            raise SourceError(self.name, str(exc)) from exc
        self.path = self.paths[0]  # the single mouse (animal 0)
        self.n_animals = int(animals)
        self.crossings = bool(crossings)
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
        """Float64 pixel positions of head, body, tail in frame ``frame_index``.

        ``(3, 2)`` for the single mouse; ``(N, 3, 2)`` with ``animals=N > 1`` (row = the animal's identity).
        """
        if self.n_animals == 1:
            return self.path.keypoints(self.time_s(frame_index))
        return self.animal_truth(frame_index)

    def truth_many(self, frame_indices) -> np.ndarray:
        """Truth for many frames at once (e.g. to find frames with the body in a zone).

        ``(F, 3, 2)`` for the single mouse; ``(F, N, 3, 2)`` with ``animals=N > 1``.
        """
        if self.n_animals == 1:
            return self.path.keypoints(self.time_s(np.asarray(frame_indices)))
        return self.animal_truth_many(frame_indices)

    def animal_truth(self, frame_index: int) -> np.ndarray:
        """``(N, 3, 2)`` truth per animal, whatever N (also ``(1, 3, 2)`` for the single mouse)."""
        t = self.time_s(frame_index)
        return np.stack([p.keypoints(t) for p in self.paths], axis=0)

    def animal_truth_many(self, frame_indices) -> np.ndarray:
        """``(F, N, 3, 2)`` truth per frame and animal."""
        t = self.time_s(np.asarray(frame_indices))
        return np.stack([p.keypoints(t) for p in self.paths], axis=-3)

    def visible(self, frame_index: int, margin_px: float = 0.0) -> np.ndarray:
        """``(N, 3)`` bool: keypoint not covered by an animal drawn on top of it (animals drawn later).

        A keypoint is hidden when its drawn centre lies inside another animal's body ellipse or head or
        tail disk drawn after it (:func:`.synthetic_path.covered`, shapes grown by ``margin_px``; use a
        negative margin for "clearly hidden", a positive one for "clearly visible" near edges).
        """
        return self.visible_many(np.asarray([frame_index]), margin_px)[0]

    def visible_many(self, frame_indices, margin_px: float = 0.0) -> np.ndarray:
        """``(F, N, 3)`` :meth:`visible` for many frames."""
        tr = self.animal_truth_many(np.atleast_1d(np.asarray(frame_indices)))
        vis = np.ones(tr.shape[:-1], bool)
        g = self.path.geometry
        for i in range(self.n_animals):
            for j in range(i + 1, self.n_animals):
                vis[:, i] &= ~covered(tr[:, i], tr[:, j], g, margin_px)
        return vis

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
        t_s = self.time_s(frame_index)
        g = self.path.geometry
        target.fill(BACKGROUND_GREY)
        for path in self.paths:  # animal 0 first, the last one on top
            x, y, heading = path.at(t_s)
            head, body, tail = path.keypoints_from(x, y, heading)
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
