"""Dynamic cropping on the CPU: small inputs run on one thread.

ONNX Runtime splits each operator over its intra-op threads and waits for
them all. On a box of a few dozen pixels an operator is microseconds of
work, and handing it out costs more than it saves. Measured on this project's
2-core machine (bundled model, ONNX Runtime alone, median ms, 2 threads / 1
thread): 24x24 0.53 / 0.34, 96x128 1.59 / 0.95, 128x160 2.46 / 1.57, 240x320
5.7 / 5.2, but 480x640 15.4 / 20.9. A dynamic crop's box is mostly small and
falls back to the whole frame whenever confidence drops, so neither count
is right for every frame.

With dynamic cropping on a multi-threaded CPU session, the model
(:meth:`rtpose.model.OnnxPoseModel.prepare`) builds a second, single-threaded
session of the same file and measures both at start-up on a few sizes between
a small box and half the frame (:func:`sizes`): inputs up to the largest size
where one thread was faster, and all smaller ones were too (:func:`limit`),
run on one thread; larger ones on all threads. The thread count changes speed,
never the outputs (the tests compare maps). Where one thread is never faster
(many cores), nothing changes.

:func:`sizes` and :func:`limit` are pure; :func:`measure` takes its clock as an
argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .clock import Clock, monotonic_ns

#: Fractions of the prepared size (each side) measured at start-up, besides the smallest box.
FRACTIONS = (0.125, 0.25, 0.5)
#: Timed runs per size and session (after one untimed run); the median counts.
REPEATS = 5


@dataclass(frozen=True)
class SmallInputs:
    """The start-up measurement and its decision."""

    max_px: int  # inputs of at most this many pixels (rows x height x width) run on one thread; 0: none
    measured: tuple[tuple[int, float, float], ...]  # (pixels, one thread ms, all threads ms), by size
    threads: int  # the main session's thread count

    def to_json(self) -> dict:
        return {"one_thread_up_to_px": self.max_px, "threads": self.threads,
                "measured": [{"px": px, "one_thread_ms": round(one, 3), "all_threads_ms": round(main, 3)}
                             for px, one, main in self.measured]}

    def describe(self) -> str:
        if not self.max_px:
            return f"dynamic crop: {self.threads} threads at every size (one thread was never faster)"
        return f"dynamic crop: inputs up to {self.max_px} px on 1 thread"


def sizes(height: int, width: int, stride: int) -> list[tuple[int, int]]:
    """Input sizes to measure for a ``height x width`` prepared size: a box of 4x4 score-map cells, then
    :data:`FRACTIONS` of each side (multiples of the stride, at least one cell), smallest first, no repeats."""
    def side(n: float) -> int:
        return max(stride, int(n) // stride * stride)

    out = [(min(height, 4 * stride), min(width, 4 * stride))]
    out += [(side(height * f), side(width * f)) for f in FRACTIONS]
    return sorted(dict.fromkeys(out), key=lambda hw: hw[0] * hw[1])


def limit(measured: Sequence[tuple[int, float, float]]) -> int:
    """The largest pixel count up to which one thread was faster at every measured size (0: not even at the
    smallest). ``measured``: ``(pixels, one thread ms, all threads ms)``."""
    best = 0
    for px, one, main in sorted(measured):
        if not one < main:
            break
        best = px
    return best


def measure(run_one: Callable[[int, int], object], run_main: Callable[[int, int], object],
            shapes: Sequence[tuple[int, int]], threads: int, *, clock: Clock = monotonic_ns,
            repeats: int = REPEATS) -> SmallInputs:
    """Time ``run_one(h, w)`` (the one-thread session) and ``run_main(h, w)`` at each of ``shapes``, smallest
    first, alternating, and decide; stops measuring at the first size where one thread is not faster."""
    measured = []
    for h, w in sorted(shapes, key=lambda hw: hw[0] * hw[1]):
        runs = ((run_one, []), (run_main, []))
        for fn, _ in runs:
            fn(h, w)  # untimed: the first run at a size allocates
        for _ in range(repeats):
            for fn, out in runs:
                t0 = clock()
                fn(h, w)
                out.append(clock() - t0)
        one, main = (float(np.median(out)) * 1e-6 for _, out in runs)
        measured.append((h * w, one, main))
        if not one < main:
            break
    return SmallInputs(limit(measured), tuple(measured), threads)
