"""The export's numeric self-check: run the ONNX model with onnxruntime, compare with a reference.

The model is run at every onnxruntime graph-optimisation level (an exported
model must work whichever the runtime picks); the figures are the worst over
levels and frames. :func:`batch_invariance` runs the model on each frame alone
and inside batches of other frames. Pose differences use DeepLabCut's single-animal decode:
first maximum of each score map (row-major), offsets ``(dx, dy)`` times
``locref_stdev``, ``x = col * stride + stride / 2 + dx``. Multi-animal models have a third output,
the part-affinity fields (``paf``), compared element-wise (``paf_max_abs``); their score maps and
offsets are compared as above (the first maximum is a fixed point of the map, whichever animal it is on);
a unique-body-part head's score maps and offsets (outputs 4 and 5) count in the same figures; an identity
head's maps (output ``identity``, last) are compared element-wise after the sigmoid DeepLabCut applies
(``identity_max_abs``, with the PAF tolerance: the head sits on the backbone's features with logits up
to +-140, where float32 conditioning alone moves them by ~0.02, i.e. up to 3.6e-3 after the sigmoid on
the noiseless synthetic fixture frames). Its pose
figure uses the PAF head's stride: a near-enough bound for a check of equal maps.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rtpose.errors import ExportError

from . import deps
from .report import ParityFigures, Tolerance

ORT_LEVELS = ("disable_all", "basic", "extended", "all")


def argmax_pose(scoremap: np.ndarray, locref: np.ndarray | None, stride: float, locref_stdev: float):
    """(B, h, w, K) score maps (+ (B, h, w, 2K) offsets) -> (B, K, 2) x, y in pixels and (B, K) flat cells."""
    b, h, w, k = scoremap.shape
    flat = scoremap.reshape(b, h * w, k)
    cell = flat.argmax(axis=1)  # (B, K), first maximum
    row, col = np.divmod(cell, w)
    xy = np.stack([col, row], axis=-1).astype(np.float64) * stride + stride / 2.0
    if locref is not None:
        off = locref.reshape(b, h * w, k, 2)
        bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
        xy += off[bi, cell, ki].astype(np.float64) * locref_stdev
    return xy, cell


def compare(ref, got, *, stride: float, locref_stdev: float,
            score_tolerance: float) -> tuple[float, float | None, float, int, int]:
    """Differences between two (scoremap, locref) pairs: score max, offset max, pose max px, near-ties, points.

    A point is a near-tie when the two models pick different cells whose reference scores differ by
    at most twice the score-map difference actually measured, capped at twice ``score_tolerance``
    (beyond that the score-map check fails anyway and the flip is counted as a pose difference).
    """
    ref_sc, ref_lr = ref
    got_sc, got_lr = got
    if ref_sc.shape != got_sc.shape or (ref_lr is not None and ref_lr.shape != got_lr.shape):
        raise ExportError(f"ONNX output shapes {got_sc.shape}/{None if got_lr is None else got_lr.shape} differ from "
                          f"the reference {ref_sc.shape}/{None if ref_lr is None else ref_lr.shape}; please report this")
    score_diff = float(np.max(np.abs(ref_sc.astype(np.float64) - got_sc)))
    locref_diff = None if ref_lr is None else float(np.max(np.abs(ref_lr.astype(np.float64) - got_lr)))
    ref_xy, ref_cell = argmax_pose(ref_sc, ref_lr, stride, locref_stdev)
    got_xy, got_cell = argmax_pose(got_sc, got_lr, stride, locref_stdev)
    dist = np.linalg.norm(ref_xy - got_xy, axis=-1)
    b, h, w, k = ref_sc.shape
    flat = ref_sc.reshape(b, h * w, k)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
    gap = flat[bi, ref_cell, ki].astype(np.float64) - flat[bi, got_cell, ki]
    ambiguous = (ref_cell != got_cell) & (gap <= 2.0 * min(score_diff, score_tolerance))
    clear = dist[~ambiguous]
    pose_diff = float(clear.max()) if clear.size else 0.0
    if not np.isfinite(dist).all():
        pose_diff = float("nan")
    return score_diff, locref_diff, pose_diff, int(ambiguous.sum()), int(dist.size)


def session(model_bytes: bytes, level: str):
    ort = deps.onnxruntime()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = {
        "disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def run_onnx(model_bytes: bytes, batches, outputs: tuple[str | None, ...], level: str, source: str):
    """Run every batch; returns a list of (scoremap, locref) per batch ((scoremap, locref, paf) with a PAF output)."""
    try:
        sess = session(model_bytes, level)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise ExportError(f"{source}: onnxruntime cannot load the exported model at optimisation level "
                          f"{level} ({exc}); please report this with the model attached") from exc
    names = [n for n in outputs if n]
    results = []
    for batch in batches:
        try:
            arrays = sess.run(names, {sess.get_inputs()[0].name: batch})
        except Exception as exc:
            raise ExportError(f"{source}: onnxruntime fails to run the exported model at optimisation level "
                              f"{level} on a {batch.shape} batch ({exc}); please report this") from exc
        results.append((arrays[0], arrays[1] if len(arrays) > 1 else None, *arrays[2:]))
    return results


def check(model_bytes: bytes, batches, reference, *, outputs, stride: float, locref_stdev: float,
          reference_name: str, tolerance: Tolerance, source: str, levels=ORT_LEVELS):
    """Compare the ONNX model at every level with ``reference`` (list of (scoremap, locref) per batch).

    Returns (ParityFigures, outputs of the last level) - the latter a reference for an FP16 check.
    """
    worst = [0.0, None if reference[0][1] is None else 0.0, 0.0, 0, 0]
    paf_worst = 0.0 if len(reference[0]) > 2 else None
    names = list(outputs)
    unique_at = names.index("unique_scoremap") if "unique_scoremap" in names else None
    identity_at = names.index("identity") if "identity" in names else None  # raw identity maps, element-wise
    identity_worst = None if identity_at is None else 0.0
    got = None
    for level in levels:
        got = run_onnx(model_bytes, batches, outputs, level, source)
        amb_level, points = 0, 0
        for ref_pair, got_pair in zip(reference, got):
            s, lr, p, amb, n = compare(ref_pair[:2], got_pair[:2], stride=stride, locref_stdev=locref_stdev,
                                      score_tolerance=tolerance.scoremap)
            if paf_worst is not None:
                if ref_pair[2].shape != got_pair[2].shape:
                    raise ExportError(f"ONNX PAF output shape {got_pair[2].shape} differs from the reference "
                                      f"{ref_pair[2].shape}; please report this")
                paf_worst = _worst(paf_worst, float(np.max(np.abs(ref_pair[2].astype(np.float64) - got_pair[2]))))
            if identity_at is not None:
                if ref_pair[identity_at].shape != got_pair[identity_at].shape:
                    raise ExportError(f"ONNX identity output shape {got_pair[identity_at].shape} differs from the "
                                      f"reference {ref_pair[identity_at].shape}; please report this")
                identity_worst = _worst(identity_worst, float(np.max(np.abs(
                    _sigmoid(ref_pair[identity_at]) - _sigmoid(got_pair[identity_at])))))
            if unique_at is not None:  # a unique-body-part head: its own (scoremap, locref) pair, same figures
                u = slice(unique_at, unique_at + 2)
                us, ulr, up, uamb, un = compare(ref_pair[u], got_pair[u], stride=stride, locref_stdev=locref_stdev,
                                                score_tolerance=tolerance.scoremap)
                s, lr, p = _worst(s, us), _worst(lr, ulr), _worst(p, up)
                amb, n = amb + uamb, n + un
            worst[0] = _worst(worst[0], s)
            worst[1] = None if lr is None else _worst(worst[1], lr)
            worst[2] = _worst(worst[2], p)
            amb_level += amb
            points += n
        worst[3] = max(worst[3], amb_level)
        worst[4] = points
    sizes = tuple(f"{b.shape[1]}x{b.shape[2]}" for b in batches for _ in range(b.shape[0]))
    figures = ParityFigures(
        reference=reference_name, scoremap_max_abs=worst[0], locref_max_abs=worst[1], pose_max_px=worst[2],
        ambiguous_peaks=worst[3], points=worst[4], frames=len(sizes), frame_sizes=sizes,
        ort_levels=tuple(levels), tolerance=tolerance, paf_max_abs=paf_worst, identity_max_abs=identity_worst,
    )
    return figures, got


def batch_invariance(model_bytes: bytes, batches, *, outputs, stride: float, locref_stdev: float,
                     tolerance: Tolerance, source: str, level: str = "all") -> ParityFigures:
    """Each frame run alone vs the same frame inside a batch of other, different frames.

    ``batches``: (B >= 2, H, W, 3) batches. Every batch is run as given and in reverse order, so
    each frame shares its batch with different neighbours at different positions; the outputs must
    match the frame run alone within ``tolerance``. A node that mixes frames (a training-mode batch
    norm left as is) fails this by orders of magnitude.
    """
    alone_runs = run_onnx(model_bytes, [b[i:i + 1] for b in batches for i in range(b.shape[0])], outputs, level,
                          source)
    alone, start = [], 0
    for b in batches:
        pairs = alone_runs[start:start + b.shape[0]]
        start += b.shape[0]
        alone.append(stack_frames(pairs))
    reversed_batches = [np.ascontiguousarray(b[::-1]) for b in batches]
    reversed_ref = [tuple(None if a is None else np.ascontiguousarray(a[::-1]) for a in pair) for pair in alone]
    figures, _ = check(model_bytes, list(batches) + reversed_batches, alone + reversed_ref, outputs=outputs,
                       stride=stride, locref_stdev=locref_stdev, reference_name="onnx-one-frame-at-a-time",
                       tolerance=tolerance, source=source, levels=(level,))
    # Count each distinct frame once (every frame was compared twice: in order and reversed).
    half = len(figures.frame_sizes) // 2
    return dataclasses.replace(figures, frames=half, frame_sizes=figures.frame_sizes[:half])


def stack_frames(pairs):
    """[(scoremap, locref[, paf]), ...] of single frames -> one (scoremap, locref[, paf]) batch."""
    return tuple(None if pairs[0][i] is None else np.concatenate([p[i] for p in pairs])
                 for i in range(len(pairs[0])))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _worst(a: float, b: float) -> float:
    return b if (np.isnan(b) or b > a) else a
