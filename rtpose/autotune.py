"""``--target-latency-ms``: measure the model on the actual source at start-up, keep the most accurate setting
that meets the target at p99.

Candidates (:func:`candidates`) are ordered from most to least accurate: resize
1, 0.75, 0.5, 0.35, 0.25 (fewer pixels, coarser poses); at each resize the
thread counts to try (more threads change speed, not poses). The user's
``--crop``/``--dynamic-crop`` are kept as given (they do not change accuracy
while the animal is inside the box). Each candidate runs the engine's own
per-frame calls (crop/resize, ``load_frame``, ``run``, decode) on frames read
from the source; the first candidate, in accuracy order, whose p99 meets the
target wins (:func:`choose`). If none does, the fastest is used and the choice
says so.

:func:`choose` and :func:`candidates` are pure; :func:`measure` takes its clock
as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from .clock import Clock, monotonic_ns
from .framing import Framing

#: Resize factors tried, most accurate first.
RESIZES = (1.0, 0.75, 0.5, 0.35, 0.25)


@dataclass(frozen=True)
class Candidate:
    resize: float
    threads: int

    def describe(self) -> str:
        return f"resize {self.resize:g}, {self.threads} thread{'s' if self.threads != 1 else ''}"


@dataclass(frozen=True)
class Measured:
    candidate: Candidate
    p50_ms: float
    p99_ms: float
    frames: int


@dataclass(frozen=True)
class Choice:
    """The setting chosen for ``target_ms`` and everything measured to choose it."""

    target_ms: float
    chosen: Measured
    met: bool  # False: no candidate met the target; ``chosen`` is the fastest
    measured: tuple[Measured, ...]

    def describe(self) -> str:
        c = self.chosen
        head = (f"target {self.target_ms:g} ms at p99: " + ("chose" if self.met else "NOT MET by any setting; using the "
                                                            "fastest,") + f" {c.candidate.describe()}")
        return f"{head} (expected p50 {c.p50_ms:.2f} ms, p99 {c.p99_ms:.2f} ms; measured on {c.frames} frames)"

    def to_json(self) -> dict:
        return {"target_ms": self.target_ms, "met": self.met, "resize": self.chosen.candidate.resize,
                "threads": self.chosen.candidate.threads, "expected_p50_ms": self.chosen.p50_ms,
                "expected_p99_ms": self.chosen.p99_ms,
                "measured": [{"resize": m.candidate.resize, "threads": m.candidate.threads, "p50_ms": m.p50_ms,
                              "p99_ms": m.p99_ms, "frames": m.frames} for m in self.measured]}


def candidates(max_threads: int, *, width: int, height: int, stride: float,
               resizes: Sequence[float] = RESIZES) -> list[Candidate]:
    """Settings to try, most accurate first; resizes that leave less than 4 score-map cells a side are dropped."""
    threads = sorted({max(1, int(max_threads)), 1}, reverse=True)
    out = []
    for r in resizes:
        if int(width * r) < 4 * stride or int(height * r) < 4 * stride:
            continue
        out += [Candidate(float(r), t) for t in threads]
    return out


def choose(target_ms: float, measured: Sequence[Measured]) -> Choice:
    """The most accurate measured setting whose p99 meets ``target_ms`` (candidates in accuracy order: a
    higher resize is more accurate; at equal resize the faster p99 wins); else the fastest."""
    if not measured:
        raise ValueError("nothing was measured")
    by_resize: dict[float, list[Measured]] = {}
    for m in measured:
        by_resize.setdefault(m.candidate.resize, []).append(m)
    for resize in sorted(by_resize, reverse=True):
        fits = [m for m in by_resize[resize] if m.p99_ms <= target_ms]
        if fits:
            return Choice(target_ms, min(fits, key=lambda m: m.p99_ms), True, tuple(measured))
    return Choice(target_ms, min(measured, key=lambda m: m.p99_ms), False, tuple(measured))


def measure(model_for: Callable[[int], object], frames: np.ndarray, framing: Framing | None,
            cands: Sequence[Candidate], target_ms: float, *, warmup: int = 3, clock: Clock = monotonic_ns,
            on_result: Callable[[Measured], None] | None = None) -> Choice:
    """Time each candidate on ``frames`` (BGR uint8, ``(N, H, W, 3)``), most accurate first, stopping at the
    first resize whose best thread count meets the target. ``model_for(threads)`` returns a model."""
    from .decode import Decoder
    from .preprocess import FrameLoader
    from .results import PoseBatch

    base = framing or Framing()
    n, height, width = frames.shape[:3]
    done: list[Measured] = []
    for resize in dict.fromkeys(c.resize for c in cands):
        for cand in (c for c in cands if c.resize == resize):
            model = model_for(cand.threads)
            meta = model.metadata
            loader = FrameLoader(model, replace(base, resize=resize), width, height, 1)
            loader.prepare_model(1)
            batch = PoseBatch(1, meta.num_bodyparts)
            dec = Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, 1)
            times = np.empty(n, np.int64)
            for i in range(warmup + n):
                t0 = clock()
                loader.load(0, 0, frames[i % n], batch.crop_box[0])
                scmap, locref = model.run(1)
                dec.decode(scmap, locref, batch.pose, 1)
                loader.to_full_frame(batch, 1)
                loader.observe(batch, 1)
                if i >= warmup:
                    times[i - warmup] = clock() - t0
            ms = times * 1e-6
            result = Measured(cand, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), n)
            done.append(result)
            if on_result is not None:
                on_result(result)
        if any(m.p99_ms <= target_ms for m in done if m.candidate.resize == resize):
            break
    return choose(target_ms, done)
