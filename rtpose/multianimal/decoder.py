"""Multi-animal maps -> animals: DeepLabCut 3.0.2's bottom-up decoding, batched, in Numba.

:class:`MultiAnimalDecoder` turns a batch of the ONNX model's outputs (see :mod:`.params` for the
contract) into rtpose's flat multi-animal poses, exactly as DeepLabCut's ``PartAffinityFieldPredictor``
does (same animals, same order, same coordinates, bit for bit on the fixtures built with DeepLabCut
itself), in three steps per image:

1. peaks (:mod:`.peaks`): max-pool NMS on the smoothed score maps, positions refined with locref;
2. limb affinities (:mod:`.paf`): PAF line integrals, only for the peak pairs the assembler can link;
3. assembly (:mod:`.assembly`): DeepLabCut's ``Assembler`` (links by optimal assignment, complete
   components, greedy filling, fusion, ``min_n_links``, pose NMS, ``num_animals`` cap, ``add_discarded``).

Output per image ``b``: ``out[b]`` ``(A*K + U, 3)`` x, y, likelihood in input pixels, the animals in
DeepLabCut's output order in slots ``0..n_animals[b]-1`` (DeepLabCut's ``poses[b, :n]``), later slots
and missing body parts NaN (DeepLabCut writes -1 for empty slots and likelihood 0 for missing parts);
``affinity[b, a]`` DeepLabCut's per-animal affinity (``poses[..., 4]``: the mean of its links'
affinities, 0 without links). The ``U`` unique body parts come from the model's separate unique-part
head (DeepLabCut 3's ``HeatmapPredictor``: argmax, locref, likelihood clipped to [0, 1]), decoded by
:class:`rtpose.decode.Decoder`.

Buffers are preallocated for ``max_peaks`` peaks per image (all parts together) and, for greedy linking,
``max_candidates`` candidate pairs per limb. An image with more grows the buffers (an allocation,
counted in :attr:`MultiAnimalDecoder.n_regrow`) and the batch is decoded again: results stay exact.
Real models give tens of peaks per image; noise maps thousands.

No I/O, threads or clocks. One decoder per thread (it owns its scratch memory).
"""

from __future__ import annotations

import operator

import numba
import numpy as np

from ..decode import Decoder, DecodeInputError, _check_f32c
from ..errors import ConfigError
from .assembly import OVERFLOW_CANDIDATES, assemble_image, make_work
from .layout import AnimalLayout
from .params import AssemblyParams
from .paf import linspace_f32
from .peaks import find_peaks_image, peak_positions

__all__ = ["MultiAnimalDecoder", "check_graph"]

_F64 = np.dtype(np.float64)


def check_graph(params: AssemblyParams, n_parts: int) -> np.ndarray:
    """The PAF graph as an (E, 2) int64 array, after checking it and the peak parameters."""
    if params.nms_radius < 1 or params.nms_radius % 2 == 0:
        raise ConfigError(f"nms_radius {params.nms_radius}: DeepLabCut's peak finder needs an odd radius "
                          "(with an even one its max-pool output has another size and DeepLabCut fails)")
    if not params.peak_threshold > 0:
        raise ConfigError(f"peak_threshold {params.peak_threshold}: must be > 0 (DeepLabCut uses 0.01)")
    if params.n_points < 2:
        raise ConfigError(f"n_points {params.n_points}: a PAF line integral needs at least 2 samples")
    pairs = set()
    for s, t in params.graph:
        if not (0 <= s < n_parts and 0 <= t < n_parts) or s == t:
            raise ConfigError(f"PAF graph edge ({s}, {t}) does not join two of the model's {n_parts} body parts")
        key = (min(s, t), max(s, t))
        if key in pairs:
            raise ConfigError(f"PAF graph joins body parts {key} twice; re-export with one limb per pair")
        pairs.add(key)
    return np.asarray(params.graph, np.int64).reshape(-1, 2)


@numba.njit(cache=True, nogil=True)
def _peaks_batch(scores, locref, n, radius, threshold, stride, locref_stdev, tmp, peaks, npk, xy, conf):
    """Peaks, positions and confidences of images ``[:n]``. Returns -1 or the image that overflowed.

    (A kernel of its own: inside the large assembly kernel LLVM stops vectorising the threshold scan.)
    """
    for b in range(n):
        c = find_peaks_image(scores, b, radius, threshold, tmp, peaks[b])
        if c < 0:
            return b
        npk[b] = c
        peak_positions(scores, locref, b, peaks[b], c, stride, locref_stdev, xy[b], conf[b])
    return -1


@numba.njit(cache=True, nogil=True)
def _assemble_batch(paf, n, K, npk, peaks, xy, conf, graph, t_vals, scale, A, pcutoff, min_affinity, min_n_links,
                    max_overlap, greedy, force_fusion, add_discarded, clip_scores, ws, out, n_animals, affinity):
    """Animals of images ``[:n]`` into ``out``. Returns (0, 0) or (overflow code, image index)."""
    total = 0
    for b in range(n):
        for r in range(A * K):
            out[b, r, 0] = np.nan
            out[b, r, 1] = np.nan
            out[b, r, 2] = np.nan
        for a in range(A):
            affinity[b, a] = np.nan
        n_animals[b] = 0
        total += npk[b]
        if npk[b] == 0:
            continue
        na = assemble_image(ws, peaks[b], xy[b], conf[b], npk[b], paf, b, graph, t_vals, scale, K, A, pcutoff,
                            min_affinity, min_n_links, max_overlap, greedy, force_fusion, add_discarded)
        if na < 0:
            return na, b
        for q in range(na):
            s = ws.alist[q]
            for k in range(K):
                if ws.a_vis[s, k]:
                    p = ws.a_data[s, k, 2]
                    if clip_scores:
                        p = min(max(p, 0.0), 1.0)
                    out[b, q * K + k, 0] = ws.a_data[s, k, 0]
                    out[b, q * K + k, 1] = ws.a_data[s, k, 1]
                    out[b, q * K + k, 2] = p
            nl = ws.a_nlinks[s]
            affinity[b, q] = ws.a_aff[s] / nl if nl > 0 else 0.0
        n_animals[b] = na
    if n > 0 and total == 1 and npk[0] == 1 and peaks[0, 0, 0] == 0 and peaks[0, 0, 1] == 0 and peaks[0, 0, 2] == 0:
        # DeepLabCut's `if ~torch.any(peaks)`: a batch whose only peak is (image 0, part 0, row 0, col 0)
        # counts as having none.
        for r in range(A * K):
            out[0, r, 0] = np.nan
            out[0, r, 1] = np.nan
            out[0, r, 2] = np.nan
        for a in range(A):
            affinity[0, a] = np.nan
        n_animals[0] = 0
    return 0, 0


class MultiAnimalDecoder:
    """Batched DeepLabCut 3 bottom-up decoding into caller-provided arrays.

    Args:
        params: the model's :class:`AssemblyParams` (``smoothed_in_graph`` must be true: the score maps
            come sigmoid-ed and smoothed out of the graph).
        layout: the model's :class:`AnimalLayout`; ``len(individuals)`` must equal ``params.num_animals``.
        max_batch: the largest batch :meth:`decode` will be given.
        max_peaks: peaks per image the buffers hold before they grow.
        max_candidates: greedy-linking candidate pairs per limb before the buffers grow.
    """

    def __init__(self, params: AssemblyParams, layout: AnimalLayout, max_batch: int, *, max_peaks: int = 512,
                 max_candidates: int = 4096):
        if not params.smoothed_in_graph:
            raise ConfigError("the model's score maps are not smoothed in the graph; re-export it with "
                              "`rtpose export` (rtpose decodes DeepLabCut's smoothed maps)")
        if params.num_animals != layout.n_animals:
            raise ConfigError(f"the model assembles up to {params.num_animals} animals but its layout names "
                              f"{layout.n_animals} individuals; re-export it with `rtpose export`")
        if max_batch < 1:
            raise DecodeInputError(f"max_batch must be >= 1, got {max_batch!r}")
        self.params = params
        self.layout = layout
        self.max_batch = int(max_batch)
        K = layout.n_bodyparts
        self._graph = check_graph(params, K)
        self._t_vals = linspace_f32(params.n_points)
        self._scale = float(np.float32(10 ** params.n_decimals))
        self.n_regrow = 0
        self._alloc(int(max_peaks), int(max_candidates))
        unique_stride = params.unique_stride or params.stride  # DeepLabCut's unique head has its own stride
        self._unique = (Decoder(unique_stride, params.locref_stdev, layout.n_unique, self.max_batch,
                                clip_scores=True) if layout.n_unique else None)
        self._unique_out = np.empty((self.max_batch, max(layout.n_unique, 1), 3))
        self._n_animals = np.zeros(self.max_batch, np.int64)
        self._affinity = np.empty((self.max_batch, layout.n_animals))

    def _alloc(self, max_peaks: int, max_candidates: int) -> None:
        K = self.layout.n_bodyparts
        self.max_peaks = max_peaks
        self.max_candidates = max_candidates
        B = self.max_batch
        self._peaks = np.empty((B, max_peaks, 3), np.int32)
        self._tmp = np.empty((max_peaks, 3), np.int32)
        self._npk = np.zeros(B, np.int64)
        self._xy = np.empty((B, max_peaks, 2), np.float32)
        self._conf = np.empty((B, max_peaks), np.float32)
        self._ws = make_work(K, len(self._graph), self.params.num_animals, max_peaks, max_candidates)

    def decode(self, scores: np.ndarray, locref: np.ndarray, paf: np.ndarray, out: np.ndarray,
               n: int | None = None, *, unique_scores: np.ndarray | None = None,
               unique_locref: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Decode images ``[:n]`` into ``out[:n]`` (``(>= n, A*K + U, 3)`` float64, C-contiguous).

        ``scores`` (B, h, w, K), ``locref`` (B, h, w, 2K), ``paf`` (B, h, w, 2E): float32 C-contiguous
        (never copied). ``unique_scores`` (B, h, w, U) / ``unique_locref`` (B, h, w, 2U): the unique-part
        head's maps, required when the layout has unique body parts.

        Returns ``(n_animals, affinity)``: views of the decoder's own arrays (valid until the next call):
        ``n_animals[b]`` animals in slots ``0..n_animals[b]-1`` of image ``b``, ``affinity[b, a]``.
        """
        p, lay = self.params, self.layout
        K, A, U, E = lay.n_bodyparts, lay.n_animals, lay.n_unique, len(self._graph)
        _check_f32c(scores, "score maps")
        _check_f32c(locref, "offsets")
        _check_f32c(paf, "part-affinity fields")
        if scores.ndim != 4 or scores.shape[3] != K:
            raise DecodeInputError(f"score maps have shape {scores.shape}; expected (B, h, w, {K}) for the "
                                   f"model's {K} body parts")
        B, h, w, _ = scores.shape
        if locref.shape != (B, h, w, 2 * K):
            raise DecodeInputError(f"offsets have shape {locref.shape}; expected {(B, h, w, 2 * K)}")
        if paf.shape != (B, h, w, 2 * E):
            raise DecodeInputError(f"part-affinity fields have shape {paf.shape}; expected {(B, h, w, 2 * E)} "
                                   f"for {E} limbs")
        n = B if n is None else operator.index(n)
        if not 0 <= n <= B or n > self.max_batch:
            raise DecodeInputError(f"n={n} images to decode, but the maps hold {B} and the decoder was made "
                                   f"for max_batch={self.max_batch}")
        if not (isinstance(out, np.ndarray) and out.dtype == _F64 and out.flags.c_contiguous
                and out.flags.writeable and out.ndim == 3 and out.shape[0] >= n and out.shape[1:] == (lay.n_flat, 3)):
            raise DecodeInputError(f"out must be a writeable C-contiguous float64 array of shape "
                                   f"(>= {n}, {lay.n_flat}, 3); got {getattr(out, 'dtype', type(out).__name__)} "
                                   f"{getattr(out, 'shape', '')}")
        if U and (unique_scores is None or unique_locref is None):
            raise DecodeInputError(f"the model has {U} unique body parts: pass the unique head's score maps "
                                   "and offsets (unique_scores, unique_locref)")
        while _peaks_batch(scores, locref, n, p.nms_radius, p.peak_threshold, p.stride, p.locref_stdev, self._tmp,
                           self._peaks, self._npk, self._xy, self._conf) >= 0:
            self.n_regrow += 1
            self._alloc(2 * self.max_peaks, self.max_candidates)
        while True:
            code, where = _assemble_batch(
                paf, n, K, self._npk, self._peaks, self._xy, self._conf, self._graph, self._t_vals, self._scale, A,
                p.pcutoff, p.min_affinity, p.min_n_links, p.max_overlap, p.greedy, p.force_fusion, p.add_discarded,
                p.clip_scores, self._ws, out, self._n_animals, self._affinity)
            if code == 0:
                break
            if code != OVERFLOW_CANDIDATES:  # pragma: no cover - assemble_image returns no other code
                raise RuntimeError(f"multi-animal decode failed with code {code} on image {where}")
            self.n_regrow += 1
            self._ws = make_work(K, E, A, self.max_peaks, 2 * self.max_candidates)
            self.max_candidates *= 2
        if U:
            self._unique.decode(unique_scores, unique_locref, self._unique_out, n)
            out[:n, A * K:, :] = self._unique_out[:n]
        return self._n_animals[:n], self._affinity[:n]


def warmup(params: AssemblyParams, layout: AnimalLayout) -> None:
    """Compile (or load from the cache) the kernels, on a tiny synthetic batch."""
    K, E = layout.n_bodyparts, len(params.graph)
    dec = MultiAnimalDecoder(params, layout, 1, max_peaks=8, max_candidates=8)
    h, w = 6, 6
    scores = np.zeros((1, h, w, K), np.float32)
    scores[0, 2, 2, :] = 0.9
    scores[0, 4, 4, :] = 0.8
    locref = np.zeros((1, h, w, 2 * K), np.float32)
    paf = np.zeros((1, h, w, 2 * E), np.float32)
    out = np.empty((1, layout.n_flat, 3))
    kw = {}
    if layout.n_unique:
        kw = dict(unique_scores=np.zeros((1, h, w, layout.n_unique), np.float32),
                  unique_locref=np.zeros((1, h, w, 2 * layout.n_unique), np.float32))
    dec.decode(scores, locref, paf, out, **kw)
