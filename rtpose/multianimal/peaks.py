"""Peaks of smoothed multi-animal score maps, DeepLabCut 3.0.2's max-pool NMS, in Numba.

DeepLabCut (``PartAffinityFieldPredictor.find_local_peak_indices_maxpool_nms``) max-pools the smoothed
maps with ``kernel_size=nms_radius, stride=1, padding=nms_radius // 2`` and keeps the cells equal to their
window's maximum that are ``>= 0.01`` (float32), in ``torch.nonzero`` order: body part, then row, then
column. Here only cells at or above the threshold are tested, by reading their window (NaN or a larger
neighbour rejects a cell, as NaN propagates through torch's max-pool); cells outside the map are
ignored (torch pads with -inf). Then the peaks are put in part order with a counting sort.

Then each peak's position in input pixels: ``stride * (col, row) + stride // 2 + locref * locref_stdev``
in float32 (``calc_peak_locations``), and its confidence, the smoothed score.
"""

from __future__ import annotations

import numba
import numpy as np

_CHUNK = 32  # floats per vectorised threshold count


@numba.njit(cache=True, nogil=True)
def find_peaks_image(scores, b, radius, threshold, tmp, out):
    """Peaks of image ``b`` of ``scores`` (B, h, w, K) into ``out`` (cap, 3) int32 (part, row, col).

    ``tmp``: int32 (cap, 3) scratch. Returns the number of peaks, or ``-(number)`` when more than
    ``cap`` were found (nothing useful is written then; the caller grows its buffers and retries).
    """
    _, h, w, K = scores.shape
    cap = out.shape[0]
    p = radius // 2
    n = 0
    thr = np.float32(threshold)
    row = scores[b].reshape((h, w * K))
    nq = w * K
    for r in range(h):
        r0 = max(r - p, 0)
        r1 = min(r - p + radius, h)
        q = 0
        while q < nq:
            # most cells are below the threshold: a vectorised count over a chunk skips them
            e = min(q + _CHUNK, nq)
            cnt = 0
            for t in range(q, e):
                cnt += row[r, t] >= thr
            if cnt == 0:
                q = e
                continue
            for t in range(q, e):
                v = row[r, t]
                if not (v >= thr):
                    continue
                c = t // K
                k = t - c * K
                c0 = max(c - p, 0)
                c1 = min(c - p + radius, w)
                # the 4 nearest cells of the window first: on a blob's slope one of them is larger
                # (the same comparisons as the whole window's, in another order: the same answer)
                if radius >= 3:
                    if r > 0 and not (scores[b, r - 1, c, k] <= v):
                        continue
                    if r + 1 < h and not (scores[b, r + 1, c, k] <= v):
                        continue
                    if c > 0 and not (row[r, t - K] <= v):
                        continue
                    if c + 1 < w and not (row[r, t + K] <= v):
                        continue
                peak = True
                for rr in range(r0, r1):
                    for cc in range(c0, c1):
                        u = scores[b, rr, cc, k]
                        if u > v or u != u:
                            peak = False
                            break
                    if not peak:
                        break
                if peak:
                    if n < cap:
                        tmp[n, 0] = k
                        tmp[n, 1] = r
                        tmp[n, 2] = c
                    n += 1
            q = e
    if n > cap:
        return -n
    # stable counting sort by part: (part, row, col) = torch.nonzero order
    o = 0
    for k in range(K):
        for i in range(n):
            if tmp[i, 0] == k:
                out[o, 0] = k
                out[o, 1] = tmp[i, 1]
                out[o, 2] = tmp[i, 2]
                o += 1
    return n


@numba.njit(cache=True, nogil=True)
def peak_positions(scores, locref, b, peaks, n, stride, locref_stdev, xy, conf):
    """``xy`` (cap, 2) float32 pixel positions and ``conf`` (cap,) float32 scores of ``n`` peaks."""
    st = np.float32(stride)
    half = np.float32(np.floor(st / np.float32(2.0)))
    sd = np.float32(locref_stdev)
    for i in range(n):
        k = peaks[i, 0]
        r = peaks[i, 1]
        c = peaks[i, 2]
        dx = locref[b, r, c, 2 * k] * sd
        dy = locref[b, r, c, 2 * k + 1] * sd
        xy[i, 0] = (st * np.float32(c) + half) + dx
        xy[i, 1] = (st * np.float32(r) + half) + dy
        conf[i] = scores[b, r, c, k]
