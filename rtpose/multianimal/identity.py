"""DeepLabCut 3's identity head: which individual each assembled animal is, frame by frame.

A DeepLabCut 3 multi-animal model trained with ``identity: true`` has an extra head
(``config/base/head_identity.yaml``: a ``HeatmapHead`` with one map per individual and an
``IdentityPredictor``). DeepLabCut 3.0.2 turns its maps into the animals' order in three steps, ported
here exactly (LGPL-3.0 like rtpose):

1. ``IdentityPredictor`` (``models/predictors/identity_predictor.py``): the raw maps ``(h, w, A)`` are
   resized to ``(int(h * stride), int(w * stride))`` with torchvision's ``F.resize(..., BILINEAR,
   antialias=True)`` (PyTorch's ``_upsample_bilinear2d_aa``), then the sigmoid is applied;
2. ``PredictKeypointIdentities`` (``data/postprocessor.py``): the identity scores of each keypoint of
   each animal are the resized map at ``rint(x), rint(y)`` clipped into the map, in the model-input
   pixel frame; a keypoint with a non-finite coordinate scores 0. DeepLabCut pads the predictor's poses
   with -1 rows to ``A`` animals (``PartAffinityFieldPredictor`` already did): a -1 row samples the
   map at (0, 0) with confidence -1;
3. ``AssignIndividualIdentities`` / ``post_processing/identity.py: assign_identity``: cost ``(A, A)`` =
   the mean over keypoints of ``confidence * scores``, ``linear_sum_assignment(cost, maximize=True)``,
   and the animals reordered so that identity ``j`` holds the animal assigned to it.

rtpose's ONNX graph outputs the raw maps at head resolution (``identity``, stride
``AssemblyParams.identity_stride``); the resize is computed only at the keypoints it needs, with
PyTorch's own weights (float32, computed as ``HelperInterpBase::_compute_weights_aa`` does; horizontal
pass first, each product added with one rounding as PyTorch's CPU kernel compiled with FMA does) so
the resized values are bit-identical to PyTorch's (tested against stored torch arrays). The sigmoid is
PyTorch's ``1 / (1 + exp(-x))`` in float32 with a correctly rounded ``exp``; PyTorch's vectorised ``exp``
(SLEEF, 1 ulp) differs in the last place for about 4 % of values, so identity scores agree with
DeepLabCut's to ~6e-8, not bit for bit. The assignment uses :func:`.lsap.lsap_max_nb` (SciPy's tie-breaking).

One deviation: a partly assembled animal (a body part missing) has NaN confidence in DeepLabCut's poses,
which makes its cost NaN and SciPy raise; rtpose counts such a keypoint as confidence 0.

:func:`identity_order_reference` is plain NumPy (the tests' reference); :class:`IdentityAssigner` is the
Numba path the pipeline uses, bit-identical to it. No I/O, threads or clocks.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .lsap import lsap_buffers, lsap_max, lsap_max_nb

__all__ = ["IdentityAssigner", "aa_weights", "identity_order_reference", "resize_aa_reference"]

_F32 = np.float32


def aa_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's antialiased bilinear weights for one dimension (``align_corners=False``, no scale given).

    Returns ``(start (out,), count (out,), weights (out, m))``: output index ``i`` is
    ``sum_j weights[i, j] * in[start[i] + j]`` for ``j < count[i]``; float32 arithmetic as
    ``HelperInterpBase::_compute_weights_aa`` (``scalar_t`` float) does it.
    """
    in_size, out_size = int(in_size), int(out_size)
    scale = _F32(in_size) / _F32(out_size)
    if scale >= 1.0:  # shrinking: the triangle widens with the scale
        support, invscale = _F32(1.0) * scale, _F32(1.0) / scale
    else:
        support, invscale = _F32(1.0), _F32(1.0)
    m = int(math.ceil(float(support))) * 2 + 1
    start = np.zeros(out_size, np.int64)
    count = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, m), np.float32)
    for i in range(out_size):
        center = _F32(float(scale) * (i + 0.5))
        xmin = max(int(float(_F32(center - support)) + 0.5), 0)
        xsize = min(int(float(_F32(center + support)) + 0.5), in_size) - xmin
        total = _F32(0.0)
        for j in range(xsize):
            x = abs(_F32((float(_F32(_F32(j + xmin) - center)) + 0.5) * float(invscale)))
            w = _F32(1.0) - x if x < 1.0 else _F32(0.0)
            weights[i, j] = w
            total = _F32(total + w)
        if total != 0.0:
            for j in range(xsize):
                weights[i, j] = _F32(weights[i, j] / total)
        start[i], count[i] = xmin, xsize
    return start, count, weights


def resize_aa_reference(maps: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``(h, w, C)`` float32 -> ``(out_h, out_w, C)``: PyTorch's ``_upsample_bilinear2d_aa`` on CPU, whole map
    (plain NumPy; the tests compare it with PyTorch)."""
    maps = np.asarray(maps, np.float32)
    h, w = maps.shape[:2]
    sx, nx, wx = aa_weights(w, out_w)
    sy, ny, wy = aa_weights(h, out_h)
    tmp = np.zeros((h, out_w, maps.shape[2]), np.float32)
    for i in range(out_w):  # horizontal pass first (the contiguous dimension of PyTorch's NCHW)
        tmp[:, i] = _fma_sum(maps[:, sx[i]: sx[i] + nx[i]], wx[i, : nx[i]], axis=1)
    out = np.zeros((out_h, out_w, maps.shape[2]), np.float32)
    for i in range(out_h):
        out[i] = _fma_sum(tmp[sy[i]: sy[i] + ny[i]], wy[i, : ny[i]], axis=0)
    return out


def _fma_sum(values: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """``v0*w0 + v1*w1 + ...`` in float32, every term after the first added with one rounding (an FMA:
    the float32 product is exact in float64)."""
    v = np.moveaxis(values, axis, 0)
    acc = (v[0].astype(np.float64) * float(weights[0])).astype(np.float32)
    for j in range(1, len(weights)):
        acc = (acc.astype(np.float64) + v[j].astype(np.float64) * float(weights[j])).astype(np.float32)
    return acc


def identity_order_reference(maps: np.ndarray, animals: np.ndarray, n_found: int, stride: float,
                             apply_sigmoid: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """DeepLabCut 3.0.2's identity assignment of one frame, plain NumPy.

    ``maps``: the identity head's raw ``(h, w, A)`` float32 maps; ``animals``: ``(A, K, 3)`` x, y,
    likelihood in model-input pixels, the assembled animals in DeepLabCut's order in rows ``:n_found``
    (rtpose's decoder output: NaN for missing parts and empty rows). Returns ``(order (A,) int64,
    scores (A, K, A) float64)``: identity ``j`` is animal ``order[j]``; ``scores`` are DeepLabCut's
    ``identity_scores`` before the reordering (row = assembled animal).
    """
    h, w, n_ids = maps.shape
    full = resize_aa_reference(maps, int(h * stride), int(w * stride))
    if apply_sigmoid:  # torch's 1 / (1 + exp(-x)) in float32, exp correctly rounded (inf -> 0 as in torch)
        with np.errstate(over="ignore"):
            full = np.float32(1.0) / (np.float32(1.0) + np.exp(-full.astype(np.float64)).astype(np.float32))
    H, W = full.shape[:2]
    a, k = animals.shape[:2]
    poses = np.array(animals, np.float64)
    poses[n_found:] = -1.0  # DeepLabCut's padding of the missing animals
    scores = np.zeros((a, k, n_ids))
    for i in range(a):
        xy = poses[i, :, :2]
        valid = np.all(np.isfinite(xy), axis=1)
        idx = np.zeros((k, 2), np.int64)
        idx[valid] = np.rint(xy[valid]).astype(np.int64)
        xs, ys = np.clip(idx[:, 0], 0, W - 1), np.clip(idx[:, 1], 0, H - 1)
        for j in range(k):
            if valid[j]:
                scores[i, j] = full[ys[j], xs[j], :]
    conf = np.nan_to_num(poses[:, :, 2:3], nan=0.0)  # DeepLabCut: NaN (SciPy raises); rtpose: 0
    cost = np.mean(conf * scores, axis=1)
    work, iwork = lsap_buffers(max(a, n_ids))
    rows, cols = np.zeros(a, np.int64), np.zeros(a, np.int64)
    n = lsap_max(cost, a, n_ids, work, iwork, rows, cols)
    order = np.zeros(n, np.int64)
    for r, c in zip(rows[:n], cols[:n]):
        order[c] = r
    return order, scores


@numba.njit(cache=True, nogil=True)
def _sample_nb(maps, y, x, sy, ny, wy, sx, nx, wx, channel, apply_sigmoid):
    """The resized (and sigmoid) map at output pixel (y, x), channel ``channel``: bit-identical to
    :func:`resize_aa_reference`."""
    acc = np.float32(0.0)
    for i in range(ny[y]):
        r = sy[y] + i
        row = np.float32(np.float64(maps[r, sx[x], channel]) * np.float64(wx[x, 0]))
        for j in range(1, nx[x]):
            row = np.float32(np.float64(row) + np.float64(maps[r, sx[x] + j, channel]) * np.float64(wx[x, j]))
        if i == 0:
            acc = np.float32(np.float64(row) * np.float64(wy[y, 0]))
        else:
            acc = np.float32(np.float64(acc) + np.float64(row) * np.float64(wy[y, i]))
    if apply_sigmoid:
        e = np.float32(np.exp(-np.float64(acc)))
        return np.float32(np.float32(1.0) / np.float32(np.float32(1.0) + e))
    return acc


@numba.njit(cache=True, nogil=True)
def identity_order_nb(maps, animals, n_found, height, width, sy, ny, wy, sx, nx, wx, apply_sigmoid,
                      scores, cost, work, iwork, rows, cols, order):
    """:func:`identity_order_reference` compiled, into caller-provided arrays (allocates nothing).

    ``animals`` (A, K, 3) float64; ``height`` x ``width`` the resized map size; ``sy/ny/wy``,
    ``sx/nx/wx``: :func:`aa_weights` of the two dimensions. Fills ``scores`` (A, K, A), ``cost`` (A, A)
    and ``order`` (A,); returns the number of assigned identities."""
    a, k = animals.shape[0], animals.shape[1]
    n_ids = maps.shape[2]
    for i in range(a):
        for j in range(k):
            if i < n_found:
                x, y = animals[i, j, 0], animals[i, j, 1]
            else:
                x, y = -1.0, -1.0
            valid = np.isfinite(x) and np.isfinite(y)
            xi, yi = 0, 0
            if valid:
                xi = min(max(np.int64(np.rint(x)), 0), width - 1)
                yi = min(max(np.int64(np.rint(y)), 0), height - 1)
            for c in range(n_ids):
                scores[i, j, c] = _sample_nb(maps, yi, xi, sy, ny, wy, sx, nx, wx, c, apply_sigmoid) if valid else 0.0
    for i in range(a):
        for c in range(n_ids):
            total = 0.0
            for j in range(k):
                conf = animals[i, j, 2] if i < n_found else -1.0
                if np.isnan(conf):
                    conf = 0.0
                total += conf * scores[i, j, c]
            cost[i, c] = total / k
    n = lsap_max_nb(cost, a, n_ids, work, iwork, rows, cols)
    for t in range(n):
        order[cols[t]] = rows[t]
    return n


class IdentityAssigner:
    """DeepLabCut's identity assignment for a model with an identity head, per frame, in place.

    ``stride``, ``apply_sigmoid``: ``AssemblyParams.identity_stride`` / ``identity_apply_sigmoid``;
    ``n_animals`` = the identity maps' channels = the individuals; ``n_bodyparts`` per animal. The resize
    weights are computed once per map size (the first frame of a size)."""

    def __init__(self, stride: float, apply_sigmoid: bool, n_animals: int, n_bodyparts: int):
        self.stride = float(stride)
        self.apply_sigmoid = bool(apply_sigmoid)
        a, k = int(n_animals), int(n_bodyparts)
        self.scores = np.zeros((a, k, a))
        self.cost = np.zeros((a, a))
        self.order = np.zeros(a, np.int64)
        self._rows, self._cols = np.zeros(a, np.int64), np.zeros(a, np.int64)
        self._work, self._iwork = lsap_buffers(a)
        self._scratch = np.empty((a, k, 3))
        self._geometry: dict[tuple[int, int], tuple] = {}

    def _weights(self, h: int, w: int) -> tuple:
        g = self._geometry.get((h, w))
        if g is None:
            height, width = int(h * self.stride), int(w * self.stride)
            g = (height, width, *aa_weights(h, height), *aa_weights(w, width))
            self._geometry[(h, w)] = g
        return g

    def assign(self, maps: np.ndarray, animals: np.ndarray, n_found: int) -> np.ndarray:
        """Reorder ``animals`` ((A, K, 3) float64 view, rows ``:n_found`` assembled) in place into identity
        order (empty identities NaN); returns :attr:`order` (identity ``j`` = assembled animal ``order[j]``;
        rows beyond ``n_found`` are DeepLabCut's empty padding). :attr:`scores` keeps the scores of the
        assembled order."""
        h, w = maps.shape[:2]
        height, width, sy, ny, wy, sx, nx, wx = self._weights(h, w)
        identity_order_nb(maps, animals, n_found, height, width, sy, ny, wy, sx, nx, wx, self.apply_sigmoid,
                          self.scores, self.cost, self._work, self._iwork, self._rows, self._cols, self.order)
        np.copyto(self._scratch, animals)
        for j in range(animals.shape[0]):
            src = int(self.order[j])
            if src < n_found:
                animals[j] = self._scratch[src]
            else:
                animals[j] = np.nan
        return self.order


def warmup(n_animals: int = 2, n_bodyparts: int = 3) -> None:
    """Compile (or load the cached) kernels before the first frame."""
    assigner = IdentityAssigner(8.0, True, n_animals, n_bodyparts)
    animals = np.full((n_animals, n_bodyparts, 3), np.nan)
    animals[0] = 4.0
    assigner.assign(np.zeros((2, 2, n_animals), np.float32), animals, 1)
