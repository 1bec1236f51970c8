"""``--target-latency-ms``: measure the model on the actual source at start-up, keep the most accurate setting
that meets the target at p99.

Candidates (:func:`candidates`) are ordered from most to least accurate: resize
1, 0.75, 0.5, 0.35, 0.25 (fewer pixels, coarser poses), and at each resize the
precisions available, FP32 before FP16 before INT8; at each of those the thread
counts to try (more threads change speed, not poses). The precisions come from
the model's *twins* (:func:`find_twins`): the other rtpose exports of the same
network in the model's folder (``rtpose export --fp16``, ``--int8`` write them
there), recognised by the source checksum in their metadata; an INT8 twin
counts only if it passed its accuracy gate. Other exports of the same network
at the same precision (e.g. a uint8-input one) are tried at the same rank: the
faster wins.

The user's ``--crop``/``--dynamic-crop`` are kept as given (they choose which
part of the frame is seen, not how accurately), and the batch of a live run is
one frame per camera. Each candidate runs the engine's own per-frame calls
(crop/resize, ``load_frame``, ``run``, decode) on frames read from the source;
the first rank, in accuracy order, whose best p99 meets the target wins
(:func:`choose`). If none does, the fastest is used and the choice says so.

:func:`choose`, :func:`candidates` and :func:`is_twin` are pure; :func:`measure`
takes its clock as an argument; :func:`find_twins` reads file metadata only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .clock import Clock, monotonic_ns
from .framing import Framing
from .metadata import PREFIX, read_props

#: Resize factors tried, most accurate first.
RESIZES = (1.0, 0.75, 0.5, 0.35, 0.25)
#: Precisions, most accurate first (INT8 only with its accuracy gate passed).
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Variant:
    """One export of the network: the file and its precision."""

    path: str
    precision: str = "fp32"


@dataclass(frozen=True)
class Candidate:
    resize: float
    threads: int
    variant: Variant = Variant("")

    @property
    def rank(self) -> tuple[float, int]:
        """Accuracy rank, lower is more accurate: resize first, then precision."""
        return -self.resize, PRECISIONS.index(self.variant.precision)

    def describe(self) -> str:
        text = f"resize {self.resize:g}, {self.threads} thread{'s' if self.threads != 1 else ''}"
        v = self.variant
        return text + (f", {v.precision} {Path(v.path).name}" if v.path else "")


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
        def fields(c: Candidate) -> dict:
            return {"resize": c.resize, "threads": c.threads, "precision": c.variant.precision,
                    "model": c.variant.path or None}

        return {"target_ms": self.target_ms, "met": self.met, **fields(self.chosen.candidate),
                "expected_p50_ms": self.chosen.p50_ms, "expected_p99_ms": self.chosen.p99_ms,
                "measured": [{**fields(m.candidate), "p50_ms": m.p50_ms, "p99_ms": m.p99_ms, "frames": m.frames}
                             for m in self.measured]}


def candidates(max_threads: int, *, width: int, height: int, stride: float, resizes: Sequence[float] = RESIZES,
               variants: Sequence[Variant] = (Variant(""),)) -> list[Candidate]:
    """Settings to try, most accurate first (:attr:`Candidate.rank`); resizes that leave less than 4 score-map
    cells a side are dropped. ``variants``: the model and its twins."""
    threads = sorted({max(1, int(max_threads)), 1}, reverse=True)
    out = []
    for r in resizes:
        if int(width * r) < 4 * stride or int(height * r) < 4 * stride:
            continue
        out += [Candidate(float(r), t, v) for v in variants for t in threads]
    return sorted(out, key=lambda c: c.rank)  # stable: the given order within a rank


def choose(target_ms: float, measured: Sequence[Measured]) -> Choice:
    """The most accurate measured setting whose p99 meets ``target_ms`` (ranks in accuracy order: a higher
    resize, then a finer precision, is more accurate; within a rank the faster p99 wins); else the fastest."""
    if not measured:
        raise ValueError("nothing was measured")
    by_rank: dict[tuple[float, int], list[Measured]] = {}
    for m in measured:
        by_rank.setdefault(m.candidate.rank, []).append(m)
    for rank in sorted(by_rank):
        fits = [m for m in by_rank[rank] if m.p99_ms <= target_ms]
        if fits:
            return Choice(target_ms, min(fits, key=lambda m: m.p99_ms), True, tuple(measured))
    return Choice(target_ms, min(measured, key=lambda m: m.p99_ms), False, tuple(measured))


def measure(model_for: Callable[[Candidate], object], frames: np.ndarray, framing: Framing | None,
            cands: Sequence[Candidate], target_ms: float, *, warmup: int = 3, clock: Clock = monotonic_ns,
            on_result: Callable[[Measured], None] | None = None) -> Choice:
    """Time each candidate on ``frames`` (BGR uint8, ``(N, H, W, 3)``), most accurate first, stopping after the
    first rank where some candidate meets the target. ``model_for(candidate)`` returns the model for the
    candidate's variant and thread count."""
    from .decode import Decoder
    from .preprocess import FrameLoader
    from .results import PoseBatch

    base = framing or Framing()
    n, height, width = frames.shape[:3]
    done: list[Measured] = []
    for rank in sorted(dict.fromkeys(c.rank for c in cands)):
        for cand in (c for c in cands if c.rank == rank):
            model = model_for(cand)
            meta = model.metadata
            loader = FrameLoader(model, replace(base, resize=cand.resize), width, height, 1)
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
        if any(m.p99_ms <= target_ms for m in done if m.candidate.rank == rank):
            break
    return choose(target_ms, done)


def precision_of(props: Mapping[str, str]) -> str:
    """The precision an rtpose file declares (``fp32`` for files from before the key existed)."""
    extra = PREFIX + "extra."
    precision = props.get(extra + "precision") or ("fp16" if props.get(extra + "fp16") == "true" else "fp32")
    return precision if precision in PRECISIONS else "fp32"


#: Metadata that must be equal for two files to be exports of the same network, interchangeable in a run.
_SAME = ("bodyparts", "stride", "locref_stdev", "location_refinement", "extra.source_sha256")


def is_twin(base: Mapping[str, str], other: Mapping[str, str]) -> str | None:
    """Why ``other`` (an rtpose file's metadata props) can NOT stand in for ``base``'s network, or None if it can:
    same source network (checksum) and output contract, a single-animal decode like the base's, and, for INT8,
    a passed accuracy gate."""
    for key in _SAME:
        if not base.get(PREFIX + key) or base.get(PREFIX + key) != other.get(PREFIX + key):
            return f"another network or contract ({key} differs)"
    if any(k.startswith(PREFIX + "multianimal.") for k in other):
        return "a multi-animal model"
    if precision_of(other) == "int8" and other.get(PREFIX + "extra.gate.passed") != "true":
        return "an INT8 model that did not pass its accuracy gate"
    return None


def find_twins(model_path: str | os.PathLike) -> list[Variant]:
    """The model (first) and the other exports of its network in its folder (:func:`is_twin`), as variants
    in accuracy order. Reads only metadata; files that are not rtpose models are passed over."""
    path = Path(model_path)
    base = read_props(path)
    found = [Variant(str(path), precision_of(base))]
    for other in sorted(path.parent.glob("*.onnx")):
        if other.resolve() == path.resolve():
            continue
        try:
            props = read_props(other)
        except OSError:
            continue
        if is_twin(base, props) is None:
            found.append(Variant(str(other), precision_of(props)))
    return sorted(found, key=lambda v: PRECISIONS.index(v.precision))
