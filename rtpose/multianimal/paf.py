"""Part-affinity-field line integral of one limb candidate, DeepLabCut 3.0.2's float32 arithmetic, in Numba.

DeepLabCut (``PartAffinityFieldPredictor.compute_edge_costs``) samples ``n_points`` cells on the segment
between two peaks' *map* cells (``start + t * (end - start)`` with ``t = torch.linspace(0, 1, n)``,
truncated to int32, clamped), integrates the PAF's (x, y) along it with the trapezoid rule over the
sampled (col, row), takes the norm, divides by the segment length + ``eps(float32)`` and rounds affinity
and length to ``n_decimals`` (half to even). DeepLabCut computes it for every pair of peaks; the
assembler only reads the pairs it can link (the ``num_animals`` most confident peaks above ``pcutoff``,
or, greedy, pairs with ``conf_s * conf_t >= pcutoff**2``), so rtpose computes just those: the same
numbers, fewer of them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

LENGTH_EPS = np.float32(np.spacing(np.float32(1)))


def linspace_f32(n_points: int) -> np.ndarray:
    """``torch.linspace(0, 1, n_points, dtype=float32)`` bit for bit: the sample positions along a limb.

    torch computes a float32 step, then ``start + step*i`` for the first half and ``end - step*(n-1-i)``
    (one rounding, a fused multiply-add) for the second; checked against torch for n = 2..199.
    """
    n = int(n_points)
    step = float(np.float32(1.0) / np.float32(n - 1))
    half = n // 2
    t = np.empty(n, np.float32)
    for i in range(n):
        # step*i is exact in float64 (a float32 times a small int), so one rounding = the FMA's
        t[i] = np.float32(step * i) if i < half else np.float32(1.0 - step * (n - i - 1))
    return t


@numba.njit(cache=True, nogil=True)
def limb_affinity(paf, b, e, rs, cs, rt, ct, t_vals, scale):
    """Affinity (float32, rounded, NaN -> 0 as the assembler reads it) of limb ``e`` between the peak at
    map cell (rs, cs) and the one at (rt, ct) of image ``b``. ``scale`` = float32(10 ** n_decimals)."""
    _, h, w, _ = paf.shape
    scale = np.float32(scale)  # float32 arithmetic below, whatever type the caller passed
    r0 = np.float32(rs)
    c0 = np.float32(cs)
    dr = np.float32(rt) - r0
    dc = np.float32(ct) - c0
    length = np.float32(math.sqrt(float(dr) * float(dr) + float(dc) * float(dc))) + LENGTH_EPS
    n = t_vals.shape[0]
    ix = np.float32(0.0)
    iy = np.float32(0.0)
    pr = 0
    pc = 0
    pvx = np.float32(0.0)
    pvy = np.float32(0.0)
    for i in range(n):
        ri = int(r0 + t_vals[i] * dr)
        ci = int(c0 + t_vals[i] * dc)
        ri = min(max(ri, 0), h - 1)
        ci = min(max(ci, 0), w - 1)
        vx = paf[b, ri, ci, 2 * e]
        vy = paf[b, ri, ci, 2 * e + 1]
        if i > 0:
            ix = ix + (pvx + vx) * np.float32(ci - pc)
            iy = iy + (pvy + vy) * np.float32(ri - pr)
        pr = ri
        pc = ci
        pvx = vx
        pvy = vy
    ix = ix / np.float32(2.0)
    iy = iy / np.float32(2.0)
    norm = np.float32(math.sqrt(float(ix) * float(ix) + float(iy) * float(iy)))
    aff = norm / length
    aff = np.float32(np.round(aff * scale)) / scale
    if aff != aff:
        return np.float32(0.0)
    return aff
