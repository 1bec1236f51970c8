"""Rectangular linear sum assignment, with SciPy's tie-breaking, for the Numba assembler.

DeepLabCut's assembler pairs the peaks of a limb's two body parts with
``scipy.optimize.linear_sum_assignment(aff, maximize=True)``. Affinities are rounded to three
decimals, so equal entries are common and *which* optimum SciPy returns decides the animals. This is
the shortest-augmenting-path algorithm (Crouse 2016) in the form SciPy implements it
(``scipy/optimize/rectangular_lsap/rectangular_lsap.cpp``, BSD-3, by P. M. Larsen): columns scanned in
reverse order, a new sink preferred among equal shortest paths, a tall matrix solved transposed and its
pairs returned sorted by row. Tests compare it with SciPy on tie-heavy matrices. (The tracker's
:mod:`.assignment` also finds an optimum but breaks ties its own way: on tie-heavy matrices about 4 %
of its answers differ from SciPy's, so DeepLabCut's assembly needs this port.)

:func:`lsap_max` is plain Python on NumPy arrays (the reference uses it as is) and compiles with Numba
(:data:`lsap_max_nb`: one body, ``_augmenting_path`` is ``register_jitable``, plain Python when called from
Python and compiled into the caller under Numba); it writes into caller-provided work arrays and allocates
nothing.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import register_jitable


@register_jitable
def _augmenting_path(nc, cost, u, v, path, row4col, spc, i, SR, SC, remaining):
    min_val = 0.0
    num_remaining = nc
    for it in range(nc):
        remaining[it] = nc - it - 1
    for r in range(SR.shape[0]):
        SR[r] = False
    for c in range(nc):
        SC[c] = False
        spc[c] = np.inf
    sink = -1
    while sink == -1:
        index = -1
        lowest = np.inf
        SR[i] = True
        for it in range(num_remaining):
            j = remaining[it]
            r = min_val + cost[i, j] - u[i] - v[j]
            if r < spc[j]:
                path[j] = i
                spc[j] = r
            if spc[j] < lowest or (spc[j] == lowest and row4col[j] == -1):
                lowest = spc[j]
                index = it
        min_val = lowest
        if min_val == np.inf:
            return -1, min_val
        j = remaining[index]
        if row4col[j] == -1:
            sink = j
        else:
            i = row4col[j]
        SC[j] = True
        num_remaining -= 1
        remaining[index] = remaining[num_remaining]
    return sink, min_val


def lsap_max(aff, nr, nc, work, iwork, out_rows, out_cols):
    """Maximum-weight assignment of the ``nr x nc`` top-left block of ``aff`` (float64, finite).

    ``work`` / ``iwork``: buffers from :func:`lsap_buffers` for ``m >= max(nr, nc)``. Writes ``min(nr, nc)`` pairs into
    ``out_rows`` / ``out_cols`` (rows ascending, as SciPy returns them) and returns their number.
    """
    if nr == 0 or nc == 0:
        return 0
    transpose = nc < nr
    cost = work[0]
    if transpose:
        for i in range(nr):
            for j in range(nc):
                cost[j, i] = -aff[i, j]
        nr, nc = nc, nr
    else:
        for i in range(nr):
            for j in range(nc):
                cost[i, j] = -aff[i, j]
    u = work[1, 0]
    v = work[1, 1]
    spc = work[1, 2]
    for i in range(nr):
        u[i] = 0.0
    for j in range(nc):
        v[j] = 0.0
    path = iwork[0]
    col4row = iwork[1]
    row4col = iwork[2]
    remaining = iwork[3]
    SR = iwork[4]
    SC = iwork[5]
    for j in range(nc):
        path[j] = -1
        row4col[j] = -1
    for i in range(nr):
        col4row[i] = -1
    for cur in range(nr):
        sink, min_val = _augmenting_path(nc, cost, u, v, path, row4col, spc, cur, SR, SC, remaining)
        if sink < 0:
            return -1
        u[cur] += min_val
        for i in range(nr):
            if SR[i] and i != cur:
                u[i] += min_val - spc[col4row[i]]
        for j in range(nc):
            if SC[j]:
                v[j] -= min_val - spc[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            tmp = col4row[i]
            col4row[i] = j
            j = tmp
            if i == cur:
                break
    if transpose:
        # pairs (col4row[i], i) sorted by col4row (distinct values: a stable order is the order)
        n = 0
        for c in range(nc):  # original rows = transposed columns, ascending
            for i in range(nr):
                if col4row[i] == c:
                    out_rows[n] = c
                    out_cols[n] = i
                    n += 1
                    break
        return n
    for i in range(nr):
        out_rows[i] = i
        out_cols[i] = col4row[i]
    return nr


def lsap_buffers(m: int):
    """Work arrays for matrices up to ``m x m``: ``(work, iwork)``."""
    m = max(int(m), 3)
    return np.empty((2, m, m)), np.empty((6, m), np.int64)


#: :func:`lsap_max` compiled: the same code (``_augmenting_path`` is compiled into it by ``register_jitable``).
lsap_max_nb = numba.njit(cache=True, nogil=True)(lsap_max)
