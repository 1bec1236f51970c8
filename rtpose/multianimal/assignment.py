"""Optimal assignment (minimum-cost matching) in Numba, allocation-free: the Hungarian method.

:func:`solve_assignment` matches every row of an ``(n, m)`` cost matrix (``n <= m``) to a distinct
column with the smallest total cost, in O(n² m): the shortest-augmenting-path form of the Hungarian
method with row and column potentials (Kuhn 1955, Munkres 1957; the same O(n³) algorithm family as
Jonker–Volgenant). It is what ``scipy.optimize.linear_sum_assignment`` computes, without scipy.

Costs must be finite: give forbidden pairs a large finite cost (:data:`FORBIDDEN`) and make sure a
solution without them exists (the tracker pads its matrix with "unmatched" rows and columns).
Scratch space comes from :class:`AssignmentWorkspace`, so a solve allocates nothing.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["FORBIDDEN", "AssignmentWorkspace", "solve_assignment", "assign"]

#: Cost of a forbidden pair: large, finite (the potentials stay exact in float64 for costs << this).
FORBIDDEN = 1.0e9


class AssignmentWorkspace:
    """Scratch arrays for :func:`solve_assignment` on up to ``max_cols`` columns."""

    def __init__(self, max_cols: int):
        m = int(max_cols) + 1
        self.u = np.zeros(m)
        self.v = np.zeros(m)
        self.minv = np.zeros(m)
        self.p = np.zeros(m, np.int64)
        self.way = np.zeros(m, np.int64)
        self.used = np.zeros(m, np.bool_)


@numba.njit(cache=True, nogil=True)
def solve_assignment(cost, row_to_col, u, v, minv, p, way, used):
    """Minimum-cost assignment of each of the ``n`` rows of ``cost`` ``(n, m)``, ``n <= m``, to a column.

    Writes the column of row ``i`` into ``row_to_col[i]`` and returns the total cost. ``u, v, minv,
    p, way, used`` are scratch arrays of length ``>= m + 1`` (see :class:`AssignmentWorkspace`).
    """
    n, m = cost.shape
    inf = np.inf
    for j in range(m + 1):
        u[j] = 0.0
        v[j] = 0.0
        p[j] = 0
        way[j] = 0
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        for j in range(m + 1):
            minv[j] = inf
            used[j] = False
        while True:
            used[j0] = True
            i0 = p[j0]
            delta = inf
            j1 = 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    total = 0.0
    for j in range(1, m + 1):
        if p[j] != 0:
            row_to_col[p[j] - 1] = j - 1
            total += cost[p[j] - 1, j - 1]
    return total


def assign(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Convenience (allocates): ``(row_to_col, total)`` for a cost matrix; transposes if rows > columns.

    With more rows than columns, unassigned rows get ``-1``.
    """
    c = np.ascontiguousarray(cost, dtype=np.float64)
    n, m = c.shape
    if n <= m:
        out = np.empty(n, np.int64)
        ws = AssignmentWorkspace(m)
        total = solve_assignment(c, out, ws.u, ws.v, ws.minv, ws.p, ws.way, ws.used)
        return out, total
    col_to_row, total = assign(c.T)
    out = np.full(n, -1, np.int64)
    out[col_to_row] = np.arange(m)
    return out, total
