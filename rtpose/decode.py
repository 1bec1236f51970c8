"""Score maps + location-refinement offsets -> poses, exactly as DeepLabCut decodes them.

DeepLabCut's single-animal decode (``argmax_pose_predict`` in
``deeplabcut/pose_estimation_tensorflow/core/predict.py``, the same in
DeepLabCut-Live) does, per body part ``k`` of one image::

    row, col = first maximum of scmap[:, :, k] in row-major order (np.argmax)
    dx, dy   = locref[row, col, k, :] * locref_stdev      # float32 product
    x = (col * stride + 0.5 * stride) + dx                 # float64
    y = (row * stride + 0.5 * stride) + dy
    likelihood = scmap[row, col, k]

The float32 product matters: DeepLabCut scales the float32 offset array in
place (``locref *= cfg["locref_stdev"]``), which NumPy computes as
``float32(dx) * float32(locref_stdev)``. Both implementations here reproduce
that bit for bit, including NumPy's tie rule (the first maximum wins) and its
NaN rule (a NaN counts as the maximum; the first NaN wins).

DeepLabCut 3's PyTorch ``HeatmapPredictor``
(``deeplabcut/pose_estimation_pytorch/models/predictors/single_predictor.py``)
applies the same formula to the raw (not sigmoid) heatmap and, with
``clip_scores=True`` (its default head config), clips only the likelihood to
[0, 1]: ``clip_scores=True`` here does that. It computes ``x``/``y`` in float32;
the float64 result here rounds to exactly its value (``col * stride +
stride / 2`` and ``dx`` are float32 numbers whose exact sum float64 holds).

Two implementations:

* :func:`decode_reference` - plain NumPy, a direct re-expression of DeepLabCut's
  formula, batched. Allocates; for tests and as the definition.
* :class:`Decoder` - the hot path: a Numba kernel making one pass over the
  score maps of an image, all body parts at once with ``k`` innermost. The
  ``h*w`` cells are cut into blocks of :data:`BLOCK_CELLS` cells; a SIMD max
  keeps, for each (cell-within-block, body part) "lane", the maximum over all
  blocks. Per body part the best lane value is then located by scanning only
  the cells of the lanes holding it (a few dozen reads), and offsets are
  gathered only at the chosen cells. Writes into a caller-provided
  ``(B, K, 3)`` float64 array; allocates nothing per call.

Inputs: score maps ``(B, h, w, K)`` float32 C-contiguous (already sigmoid);
offsets ``(B, h, w, 2K)`` or the same memory viewed as ``(B, h, w, K, 2)``,
float32 C-contiguous, holding ``(dx, dy)`` per body part, or ``None`` for
models without location refinement. Inputs that are not C-contiguous,
writeable, aligned float32 arrays are rejected with :class:`DecodeInputError`
(a ``ValueError``) instead of being copied or silently triggering a new 0.3 s
JIT compilation: make them contiguous once where they are produced. Call
:func:`warmup` at start-up so the first frame does not pay for compilation.

No I/O, no threads, no clocks.
"""

from __future__ import annotations

import operator

import numba
import numpy as np

from .errors import ModelError

__all__ = ["Decoder", "DecodeInputError", "decode_reference", "warmup"]

#: Cells per block in the Numba kernel's one-pass max (a block of BLOCK_CELLS
#: consecutive row-major cells x K body parts is reduced with SIMD max).
BLOCK_CELLS = 128


class DecodeInputError(ModelError, ValueError):
    """Score maps, offsets or output buffer have the wrong shape, dtype or memory layout."""


# --------------------------------------------------------------------------
# NumPy reference
# --------------------------------------------------------------------------

def decode_reference(scmap, locref, stride: float, locref_stdev: float, n: int | None = None, *,
                     clip_scores: bool = False) -> np.ndarray:
    """DeepLabCut's argmax + location-refinement decode in plain NumPy.

    Args:
        scmap: ``(B, h, w, K)`` score maps.
        locref: ``(B, h, w, 2K)`` or ``(B, h, w, K, 2)`` offsets ``(dx, dy)``
            in units of ``locref_stdev``, or ``None`` (no offset term).
        stride: input pixels per score-map cell.
        locref_stdev: DeepLabCut's ``locref_stdev``.
        n: decode only the first ``n`` images (default all).
        clip_scores: clip the likelihood (not the map) to [0, 1], as DeepLabCut 3 does.

    Returns a new ``(n, K, 3)`` float64 array of x, y, likelihood in input pixels.
    """
    scmap = np.asarray(scmap)
    if n is None:
        n = scmap.shape[0]
    _, h, w, k = scmap.shape
    flat = scmap[:n].reshape(n, h * w, k)
    maxloc = np.argmax(flat, axis=1)  # (n, K): first maximum in row-major order
    rows, cols = np.unravel_index(maxloc, (h, w))
    batch = np.arange(n)[:, None]
    parts = np.arange(k)[None, :]
    likelihood = flat[batch, maxloc, parts].astype(np.float64)
    if clip_scores:
        likelihood = np.clip(likelihood, 0.0, 1.0)  # NaN stays NaN, like torch.clip
    x = cols.astype(np.float64) * stride + 0.5 * stride
    y = rows.astype(np.float64) * stride + 0.5 * stride
    if locref is not None:
        offsets = np.asarray(locref)[:n].reshape(n, h * w, k, 2)[batch, maxloc, parts, :]
        # DeepLabCut scales the float32 array in place: float32 * float32 -> float32.
        offsets = offsets * np.float32(locref_stdev)
        x = x + offsets[..., 0].astype(np.float64)
        y = y + offsets[..., 1].astype(np.float64)
    return np.stack([x, y, likelihood], axis=-1)


# --------------------------------------------------------------------------
# Numba kernel
# --------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _first_argmax_exact(f, base, ncells, K, k):
    """np.argmax semantics along one body part: first NaN, else first maximum."""
    best = f[base + k]
    idx = 0
    if best != best:
        return 0
    for c in range(1, ncells):
        v = f[base + c * K + k]
        if v != v:
            return c
        if v > best:
            best = v
            idx = c
    return idx


@numba.njit(cache=True, nogil=True)
def _decode_kernel(scmap, locref, has_locref, n, stride, locref_stdev, clip_scores, acc, out):
    B, h, w, K = scmap.shape
    stdev32 = np.float32(locref_stdev)
    ncells = h * w
    C = acc.shape[0] // K  # cells per block
    L = C * K  # floats per block
    f = scmap.reshape((B * ncells * K,))
    lf = locref.reshape((locref.size,))
    nblocks = ncells // C
    half = 0.5 * stride
    for b in range(n):
        img = b * ncells * K
        for j in range(L):
            acc[j] = -np.inf
        # ---- one pass: per lane (cell-in-block, k) max over blocks; any NaN is sticky.
        # (x0 + x1) + (x2 + x3) is NaN when an input is NaN (or +inf meets -inf):
        # such lanes take the exact scalar path below.
        r = 0
        while r + 4 <= nblocks:
            o = img + r * L
            r0 = f[o:o + L]
            r1 = f[o + L:o + 2 * L]
            r2 = f[o + 2 * L:o + 3 * L]
            r3 = f[o + 3 * L:o + 4 * L]
            for j in range(L):
                x0 = r0[j]
                x1 = r1[j]
                x2 = r2[j]
                x3 = r3[j]
                m01 = x0 if x0 > x1 else x1
                m23 = x2 if x2 > x3 else x3
                m = m01 if m01 > m23 else m23
                a = acc[j]
                t = m if m > a else a
                s4 = (x0 + x1) + (x2 + x3)
                acc[j] = t if s4 == s4 else s4
            r += 4
        while r < nblocks:
            o = img + r * L
            r0 = f[o:o + L]
            for j in range(L):
                x0 = r0[j]
                a = acc[j]
                t = x0 if x0 > a else a
                acc[j] = t if x0 == x0 else x0
            r += 1
        tail = (ncells - nblocks * C) * K
        o = img + nblocks * L
        for j in range(tail):
            x0 = f[o + j]
            a = acc[j]
            t = x0 if x0 > a else a
            acc[j] = t if x0 == x0 else x0
        # ---- per body part: best value, then its first cell in row-major order.
        for k in range(K):
            best = acc[k]
            suspicious = best != best
            for c in range(1, C):
                v = acc[c * K + k]
                if v != v:
                    suspicious = True
                elif v > best or best != best:
                    best = v
            if suspicious:
                cell = _first_argmax_exact(f, img, ncells, K, k)
            else:
                cell = ncells
                for c in range(C):
                    if acc[c * K + k] == best:
                        q = c
                        while q < cell:  # cells of lane c, in row-major order
                            if f[img + q * K + k] == best:
                                cell = q
                                break
                            q += C
            row = cell // w
            col = cell - row * w
            x = np.float64(col) * stride + half
            y = np.float64(row) * stride + half
            if has_locref:
                lo = (b * ncells + cell) * 2 * K + 2 * k
                dx = lf[lo] * stdev32
                dy = lf[lo + 1] * stdev32
                x = x + np.float64(dx)
                y = y + np.float64(dy)
            out[b, k, 0] = x
            out[b, k, 1] = y
            score = np.float64(f[img + cell * K + k])
            if clip_scores:  # NaN stays NaN
                if score < 0.0:
                    score = 0.0
                elif score > 1.0:
                    score = 1.0
            out[b, k, 2] = score


# --------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------

class Decoder:
    """Preallocated, batched DeepLabCut decode (Numba).

    Args:
        stride: input pixels per score-map cell.
        locref_stdev: DeepLabCut's ``locref_stdev`` (offsets are multiplied by
            it in float32, as DeepLabCut does).
        num_bodyparts: K, the number of score-map channels.
        max_batch: the largest batch ``decode`` will be given.
        clip_scores: clip each likelihood to [0, 1] (DeepLabCut 3's ``clip_scores``;
            the maximum is still found on the raw map).

    ``decode(scmap, locref, out, n=None)`` decodes images ``[:n]`` (default all)
    into ``out[:n]``; ``out`` must be a C-contiguous float64 ``(>= n, K, 3)``
    array. Arrays are never copied; wrong dtype, shape or layout raises
    :class:`DecodeInputError`. The Decoder holds scratch memory: use one per
    thread.
    """

    def __init__(self, stride: float, locref_stdev: float, num_bodyparts: int, max_batch: int, *,
                 clip_scores: bool = False):
        if not stride > 0:
            raise DecodeInputError(f"stride must be positive, got {stride!r}")
        if num_bodyparts < 1:
            raise DecodeInputError(f"num_bodyparts must be >= 1, got {num_bodyparts!r}")
        if max_batch < 1:
            raise DecodeInputError(f"max_batch must be >= 1, got {max_batch!r}")
        self.stride = float(stride)
        self.locref_stdev = float(locref_stdev)
        self.num_bodyparts = int(num_bodyparts)
        self.max_batch = int(max_batch)
        self.clip_scores = bool(clip_scores)
        self._acc = np.empty(BLOCK_CELLS * self.num_bodyparts, np.float32)
        self._no_locref = np.zeros((1, 1, 1, 2), np.float32)

    def decode(self, scmap: np.ndarray, locref: np.ndarray | None, out: np.ndarray, n: int | None = None) -> np.ndarray:
        """Decode images ``[:n]`` of ``scmap`` (and ``locref``) into ``out[:n]``; returns ``out``."""
        K = self.num_bodyparts
        _check_f32c(scmap, "score maps")
        if scmap.ndim != 4 or scmap.shape[3] != K:
            raise DecodeInputError(
                f"score maps have shape {scmap.shape}; expected (B, h, w, {K}) for {K} body parts. "
                "Check that the model's metadata lists the right body parts.")
        B, h, w, _ = scmap.shape
        if h == 0 or w == 0:
            raise DecodeInputError(f"score maps have shape {scmap.shape}: empty map")
        n = B if n is None else operator.index(n)  # a Python int: no new JIT signature
        if not 0 <= n <= B or n > self.max_batch:
            raise DecodeInputError(
                f"n={n} images to decode, but the score maps hold {B} and the Decoder was made for "
                f"max_batch={self.max_batch}")
        if not (isinstance(out, np.ndarray) and out.dtype == _F64 and out.flags.c_contiguous
                and out.flags.writeable and out.flags.aligned
                and out.ndim == 3 and out.shape[0] >= n and out.shape[1:] == (K, 3)):
            raise DecodeInputError(
                f"out must be a writeable C-contiguous float64 array of shape (>= {n}, {K}, 3); got "
                f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        if locref is None:
            has_locref = False
            locref = self._no_locref
        else:
            has_locref = True
            _check_f32c(locref, "offsets")
            if not (locref.shape[:3] == (B, h, w) and
                    (locref.shape[3:] == (2 * K,) or locref.shape[3:] == (K, 2))):
                raise DecodeInputError(
                    f"offsets have shape {locref.shape}; expected ({B}, {h}, {w}, {2 * K}) or "
                    f"({B}, {h}, {w}, {K}, 2) to match score maps {scmap.shape}")
        _decode_kernel(scmap, locref, has_locref, n, self.stride, self.locref_stdev, self.clip_scores, self._acc,
                       out)
        return out


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)


def _check_f32c(a, what: str) -> None:
    if not isinstance(a, np.ndarray):
        raise DecodeInputError(f"{what} must be a NumPy array, got {type(a).__name__}")
    if a.dtype != _F32:
        raise DecodeInputError(f"{what} must be float32, got {a.dtype}; convert once where they are produced")
    if not a.flags.c_contiguous:
        raise DecodeInputError(
            f"{what} are not C-contiguous (shape {a.shape}, strides {a.strides}); pass "
            "np.ascontiguousarray(...) once where they are produced (a non-contiguous array would "
            "force a slow copy or a new JIT compilation)")
    if not (a.flags.writeable and a.flags.aligned):
        raise DecodeInputError(
            f"{what} are read-only or unaligned; pass an ordinary writeable array (the kernel "
            "only reads it, but such arrays would force a new JIT compilation)")


def warmup() -> None:
    """Compile (or load from cache) the kernel for every signature the Decoder uses.

    Call once at start-up so the first frame does not pay for compilation.
    """
    dec = Decoder(8.0, 7.2801, 2, 1)
    scmap = np.zeros((1, 3, 3, 2), np.float32)
    out = np.empty((1, 2, 3), np.float64)
    dec.decode(scmap, None, out)
    dec.decode(scmap, np.zeros((1, 3, 3, 4), np.float32), out)
    dec.decode(scmap, np.zeros((1, 3, 3, 2, 2), np.float32), out)
