"""DeepLabCut 3.0.2's greedy assembly of peaks into animals, in Numba, on preallocated arrays.

A port of ``deeplabcut/core/inferenceutils.py`` (``Assembler._assemble`` with ``extract_best_links``,
``build_assemblies``, ``_fill_assembly``, fusion of superfluous assemblies, ``min_n_links``,
non-maximum pose suppression with ``max_overlap``, ``add_discarded``), in the configuration
``PartAffinityFieldPredictor`` builds (no calibration, identity or temporal window). The plain-Python
port in :mod:`.reference` is the readable definition; this one replaces DeepLabCut's Python objects by
arrays in a :class:`Work` and must give the same animals, in the same order:

* dict / list orders are link order; ``heapq`` ties are push order (a counter), as in DeepLabCut;
* ``for idx in assembly._idx`` follows CPython's set layout (:mod:`.pyset`);
* ``networkx.connected_components`` yields components in order of their first node in the link list;
* sums and comparisons use DeepLabCut's types (float32 affinities summed in float64, as NumPy 1.x does).

One known difference: with ``add_discarded=True``, unassembled joints of *exactly* equal confidence are
offered to the animals by joint index, where DeepLabCut iterates a set of ``Joint`` objects (hash order).

A graph must not repeat a pair of body parts (DeepLabCut's lookup would keep only the last such link);
:func:`.decoder.check_graph` rejects it.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba
import numpy as np
from numba.core import types
from numba.experimental import structref

from .lsap import lsap_max_nb
from .paf import limb_affinity
from .pyset import set_order, set_scratch

#: Returned by :func:`assemble_image` when the greedy candidate buffer was too small (the caller grows
#: it and decodes the batch again).
OVERFLOW_CANDIDATES = -2

_FIELDS = (
    # joints (peaks kept as DeepLabCut's Joint objects), in DeepLabCut's flattening order
    "j_x", "j_y", "j_conf", "j_label", "j_row", "j_col", "part_start",
    # links
    "l_i", "l_j", "l_w", "l_alive", "l_visited", "l_used", "l_order", "adj_start", "adj", "adj_fill",
    # assemblies (slots) and the list of live ones
    "a_data", "a_vis", "a_nvis", "a_mem", "a_nmem", "a_links", "a_nlinks", "a_aff", "alist", "alist2",
    # per-joint flags / maps
    "assembled", "discarded", "store", "seen", "parent", "comp_size", "node_order",
    # heap
    "h_key", "h_cnt", "h_link",
    # scratch
    "sel_s", "sel_t", "taken", "aff", "aff64", "lsap_w", "lsap_iw", "lsap_r", "lsap_c",
    "set_t1", "set_t2", "set_out", "c_i", "c_j", "c_w",
)


@structref.register
class _WorkType(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class Work(structref.StructRefProxy):
    """The assembler's buffers: one struct passed by reference to every kernel helper (a tuple of fifty
    arrays would be copied into every call and made compilation slow)."""


structref.define_proxy(Work, _WorkType, list(_FIELDS))


#: The buffers' memory: one flat array per dtype (+ the sizes), cut into the Work's fields by
#: :func:`work_views` once, when the buffers are made.
Packed = namedtuple("Packed", ["f64", "f32", "i64", "b", "dims"])


def _sizes(K, A, P, L, M, C, m, T, Pm):
    f64 = 2 * P + M * K * 3 + M + A * A + 2 * m * m
    f32 = P + L + L + A * A + C
    i64 = (3 * P + (K + 1) + 3 * L + (P + 1) + 2 * L + P + M + M * K + M + M * L + M + M + M + 4 * P
           + 2 * L + 2 * Pm + 6 * m + 2 * m + 2 * T + K + 2 * C)
    b = 3 * L + M * K + 4 * P
    return f64, f32, i64, b


def make_work(n_parts: int, n_edges: int, num_animals: int, max_peaks: int, max_candidates: int) -> "Work":
    """Buffers for images with at most ``max_peaks`` peaks (all parts together) and, for greedy linking,
    ``max_candidates`` candidate pairs per limb."""
    K = max(int(n_parts), 1)
    A = max(int(num_animals), 1)
    P = max(int(max_peaks), 1)
    L = max(int(n_edges), 1) * A
    M = 2 * L + 2 + A  # assemblies: one per link at most, as many force-fusion merges, a scratch, 1-part models
    C = max(int(max_candidates), 1)
    m = max(A, 3)
    T = set_scratch(K)[0].shape[0]
    Pm = max(P, A)
    f64, f32, i64, b = _sizes(K, A, P, L, M, C, m, T, Pm)
    return work_views(Packed(np.empty(f64), np.empty(f32, np.float32), np.empty(i64, np.int64),
                             np.empty(b, np.bool_), np.array([K, A, P, L, M, C, m, T, Pm], np.int64)))


@numba.njit(cache=True, nogil=True)
def work_views(pk):
    """A :class:`Work` whose fields are views of a :class:`Packed` (no copy)."""
    K, A, P, L, M, C, m, T, Pm = (pk.dims[0], pk.dims[1], pk.dims[2], pk.dims[3], pk.dims[4], pk.dims[5],
                                   pk.dims[6], pk.dims[7], pk.dims[8])
    f = pk.f64
    o = 0
    j_x = f[o:o + P]
    o += P
    j_y = f[o:o + P]
    o += P
    a_data = f[o:o + M * K * 3].reshape((M, K, 3))
    o += M * K * 3
    a_aff = f[o:o + M]
    o += M
    aff64 = f[o:o + A * A].reshape((A, A))
    o += A * A
    lsap_w = f[o:o + 2 * m * m].reshape((2, m, m))
    g = pk.f32
    o = 0
    j_conf = g[o:o + P]
    o += P
    l_w = g[o:o + L]
    o += L
    h_key = g[o:o + L]
    o += L
    aff = g[o:o + A * A].reshape((A, A))
    o += A * A
    c_w = g[o:o + C]
    q = pk.i64
    o = 0
    j_label = q[o:o + P]
    o += P
    j_row = q[o:o + P]
    o += P
    j_col = q[o:o + P]
    o += P
    part_start = q[o:o + K + 1]
    o += K + 1
    l_i = q[o:o + L]
    o += L
    l_j = q[o:o + L]
    o += L
    l_order = q[o:o + L]
    o += L
    adj_start = q[o:o + P + 1]
    o += P + 1
    adj = q[o:o + 2 * L]
    o += 2 * L
    adj_fill = q[o:o + P]
    o += P
    a_nvis = q[o:o + M]
    o += M
    a_mem = q[o:o + M * K].reshape((M, K))
    o += M * K
    a_nmem = q[o:o + M]
    o += M
    a_links = q[o:o + M * L].reshape((M, L))
    o += M * L
    a_nlinks = q[o:o + M]
    o += M
    alist = q[o:o + M]
    o += M
    alist2 = q[o:o + M]
    o += M
    store = q[o:o + P]
    o += P
    parent = q[o:o + P]
    o += P
    comp_size = q[o:o + P]
    o += P
    node_order = q[o:o + P]
    o += P
    h_cnt = q[o:o + L]
    o += L
    h_link = q[o:o + L]
    o += L
    sel_s = q[o:o + Pm]
    o += Pm
    sel_t = q[o:o + Pm]
    o += Pm
    lsap_iw = q[o:o + 6 * m].reshape((6, m))
    o += 6 * m
    lsap_r = q[o:o + m]
    o += m
    lsap_c = q[o:o + m]
    o += m
    set_t1 = q[o:o + T]
    o += T
    set_t2 = q[o:o + T]
    o += T
    set_out = q[o:o + K]
    o += K
    c_i = q[o:o + C]
    o += C
    c_j = q[o:o + C]
    bb = pk.b
    o = 0
    l_alive = bb[o:o + L]
    o += L
    l_visited = bb[o:o + L]
    o += L
    l_used = bb[o:o + L]
    o += L
    a_vis = bb[o:o + M * K].reshape((M, K))
    o += M * K
    assembled = bb[o:o + P]
    o += P
    discarded = bb[o:o + P]
    o += P
    seen = bb[o:o + P]
    o += P
    taken = bb[o:o + P]
    return Work(j_x, j_y, j_conf, j_label, j_row, j_col, part_start,
                l_i, l_j, l_w, l_alive, l_visited, l_used, l_order, adj_start, adj, adj_fill,
                a_data, a_vis, a_nvis, a_mem, a_nmem, a_links, a_nlinks, a_aff, alist, alist2,
                assembled, discarded, store, seen, parent, comp_size, node_order,
                h_key, h_cnt, h_link,
                sel_s, sel_t, taken, aff, aff64, lsap_w, lsap_iw, lsap_r, lsap_c, set_t1, set_t2, set_out,
                c_i, c_j, c_w)


# ----------------------------------------------------------------------------- one assembly


@numba.njit(cache=True, nogil=True)
def _reset(ws, s):
    K = ws.a_vis.shape[1]
    for k in range(K):
        ws.a_vis[s, k] = False
        for c in range(3):
            ws.a_data[s, k, c] = np.nan
    ws.a_nvis[s] = 0
    ws.a_nmem[s] = 0
    ws.a_nlinks[s] = 0
    ws.a_aff[s] = 0.0


@numba.njit(cache=True, nogil=True)
def _has(ws, s, j):
    for q in range(ws.a_nmem[s]):
        if ws.a_mem[s, q] == j:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _add_joint(ws, s, j):
    lab = ws.j_label[j]
    if ws.a_vis[s, lab]:
        return False
    ws.a_data[s, lab, 0] = ws.j_x[j]
    ws.a_data[s, lab, 1] = ws.j_y[j]
    ws.a_data[s, lab, 2] = ws.j_conf[j]
    ws.a_vis[s, lab] = True
    ws.a_nvis[s] += 1
    ws.a_mem[s, ws.a_nmem[s]] = j
    ws.a_nmem[s] += 1
    return True


@numba.njit(cache=True, nogil=True)
def _add_link(ws, s, lk):
    i1 = ws.l_i[lk]
    i2 = ws.l_j[lk]
    if _has(ws, s, i1) and _has(ws, s, i2):
        ws.a_aff[s] += np.float64(ws.l_w[lk])
        ws.a_links[s, ws.a_nlinks[s]] = lk
        ws.a_nlinks[s] += 1
        return False
    if ws.a_vis[s, ws.j_label[i1]] and ws.a_vis[s, ws.j_label[i2]]:
        return False
    _add_joint(ws, s, i1)
    _add_joint(ws, s, i2)
    ws.a_aff[s] += np.float64(ws.l_w[lk])
    ws.a_links[s, ws.a_nlinks[s]] = lk
    ws.a_nlinks[s] += 1
    return True


@numba.njit(cache=True, nogil=True)
def _shares_label(ws, s1, s2):
    for k in range(ws.a_vis.shape[1]):
        if ws.a_vis[s1, k] and ws.a_vis[s2, k]:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _combine(ws, dst, sa, sb):
    """``dst`` = ``sa + sb`` (DeepLabCut's ``Assembly.__add__``: a new assembly from both link lists)."""
    _reset(ws, dst)
    for q in range(ws.a_nlinks[sa]):
        _add_link(ws, dst, ws.a_links[sa, q])
    for q in range(ws.a_nlinks[sb]):
        _add_link(ws, dst, ws.a_links[sb, q])


@numba.njit(cache=True, nogil=True)
def _copy(ws, dst, src):
    K = ws.a_vis.shape[1]
    for k in range(K):
        ws.a_vis[dst, k] = ws.a_vis[src, k]
        ws.a_mem[dst, k] = ws.a_mem[src, k]
        for c in range(3):
            ws.a_data[dst, k, c] = ws.a_data[src, k, c]
    for q in range(ws.a_nlinks[src]):
        ws.a_links[dst, q] = ws.a_links[src, q]
    ws.a_nvis[dst] = ws.a_nvis[src]
    ws.a_nmem[dst] = ws.a_nmem[src]
    ws.a_nlinks[dst] = ws.a_nlinks[src]
    ws.a_aff[dst] = ws.a_aff[src]


@numba.njit(cache=True, nogil=True)
def _nanmin_dist(ws, s, x, y):
    """``np.nanmin(cdist(assembly.xy, [(x, y)]))`` (NaN when no row is finite)."""
    best = np.nan
    for k in range(ws.a_vis.shape[1]):
        dx = ws.a_data[s, k, 0] - x
        dy = ws.a_data[s, k, 1] - y
        d = math.sqrt(dx * dx + dy * dy)
        if d == d and (best != best or d < best):
            best = d
    return best


@numba.njit(cache=True, nogil=True)
def _intersection(ws, s1, s2):
    """DeepLabCut's ``Assembly.intersection_with``."""
    xa0, ya0, xa1, ya1 = _extent(ws, s1)
    xb0, yb0, xb1, yb1 = _extent(ws, s2)
    x1 = xb0 if xb0 > xa0 else xa0  # Python's max(a, b) / min(a, b)
    y1 = yb0 if yb0 > ya0 else ya0
    x2 = xb1 if xb1 < xa1 else xa1
    y2 = yb1 if yb1 < ya1 else ya1
    if x2 < x1 or y2 < y1:
        return 0.0
    f1 = _count_inside(ws, s1, x1, y1, x2, y2) / ws.a_nvis[s1]
    f2 = _count_inside(ws, s2, x1, y1, x2, y2) / ws.a_nvis[s2]
    return f2 if f2 < f1 else f1


@numba.njit(cache=True, nogil=True)
def _extent(ws, s):
    """``np.nanmin`` / ``np.nanmax`` of the assembly's x and y (NaN where a column has no value)."""
    x0 = y0 = x1 = y1 = np.nan
    for k in range(ws.a_vis.shape[1]):
        x = ws.a_data[s, k, 0]
        y = ws.a_data[s, k, 1]
        if x == x:
            if x0 != x0 or x < x0:
                x0 = x
            if x1 != x1 or x > x1:
                x1 = x
        if y == y:
            if y0 != y0 or y < y0:
                y0 = y
            if y1 != y1 or y > y1:
                y1 = y
    return x0, y0, x1, y1


@numba.njit(cache=True, nogil=True)
def _count_inside(ws, s, x1, y1, x2, y2):
    cnt = 0
    for k in range(ws.a_vis.shape[1]):
        x = ws.a_data[s, k, 0]
        y = ws.a_data[s, k, 1]
        if x == x and y == y and x >= x1 and y >= y1 and x <= x2 and y <= y2:
            cnt += 1
    return cnt


# ----------------------------------------------------------------------------- filling


@numba.njit(cache=True, nogil=True)
def _push(ws, s, i, nh, counter):
    for t in range(ws.adj_start[i], ws.adj_start[i + 1]):
        lk = ws.adj[t]
        if not ws.l_alive[lk]:
            continue
        j = ws.l_j[lk] if ws.l_i[lk] == i else ws.l_i[lk]
        if _has(ws, s, j) or ws.l_visited[lk]:
            continue
        ws.h_key[nh] = -ws.l_w[lk]
        ws.h_cnt[nh] = counter
        ws.h_link[nh] = lk
        nh += 1
        counter += 1
        ws.l_visited[lk] = True
    return nh, counter


@numba.njit(cache=True, nogil=True)
def _fill(ws, s, n_links, K):
    """DeepLabCut's ``_fill_assembly`` without edge safety."""
    for lk in range(n_links):
        ws.l_visited[lk] = False
    nh = 0
    counter = 0
    # `for idx in assembly._idx`: CPython's set order (ws.set_out is not touched by _push)
    n0 = set_order(ws.a_mem[s], ws.a_nmem[s], ws.set_t1, ws.set_t2, ws.set_out)
    for q in range(n0):
        nh, counter = _push(ws, s, ws.set_out[q], nh, counter)
    while nh > 0 and ws.a_nvis[s] < K:
        best = 0
        for q in range(1, nh):
            if ws.h_key[q] < ws.h_key[best] or (ws.h_key[q] == ws.h_key[best] and ws.h_cnt[q] < ws.h_cnt[best]):
                best = q
        lk = ws.h_link[best]
        nh -= 1
        ws.h_key[best] = ws.h_key[nh]
        ws.h_cnt[best] = ws.h_cnt[nh]
        ws.h_link[best] = ws.h_link[nh]
        i = ws.l_i[lk]
        j = ws.l_j[lk]
        if _has(ws, s, i):
            new = j
        elif _has(ws, s, j):
            new = i
        else:
            continue
        if ws.assembled[new]:
            continue
        _add_link(ws, s, lk)
        nh, counter = _push(ws, s, new, nh, counter)


# ----------------------------------------------------------------------------- links


@numba.njit(cache=True, nogil=True)
def _top_confident(ws, st, en, A, pcutoff, sel):
    """Joints ``st..en-1`` sorted by confidence (descending, stable), the first ``A``, those >= pcutoff."""
    for q in range(st, en):
        ws.taken[q] = False
    n = 0
    for _ in range(min(A, en - st)):
        best = -1
        for q in range(st, en):
            if ws.taken[q]:
                continue
            if best < 0 or np.float64(ws.j_conf[q]) > np.float64(ws.j_conf[best]):
                best = q
        ws.taken[best] = True
        if np.float64(ws.j_conf[best]) >= pcutoff:
            sel[n] = best
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _extract_links(ws, paf, b, graph, t_vals, scale, A, pcutoff, min_affinity, greedy):
    """DeepLabCut's ``extract_best_links``: links into ``ws.l_*``; returns their number (or an overflow code)."""
    nl = 0
    K = ws.part_start.shape[0] - 1
    for e in range(graph.shape[0]):
        s = graph[e, 0]
        t = graph[e, 1]
        s0, s1 = ws.part_start[s], ws.part_start[s + 1]
        t0, t1 = ws.part_start[t], ws.part_start[t + 1]
        if s1 == s0 or t1 == t0 or s >= K or t >= K:
            continue
        if greedy:
            pc2 = pcutoff * pcutoff
            ma32 = np.float32(min_affinity)
            nc = 0
            for i in range(s0, s1):
                for j in range(t0, t1):
                    if np.float64(ws.j_conf[i]) * np.float64(ws.j_conf[j]) >= pc2:
                        w = limb_affinity(paf, b, e, ws.j_row[i], ws.j_col[i], ws.j_row[j], ws.j_col[j],
                                          t_vals, scale)
                        if w >= ma32:
                            if nc >= ws.c_i.shape[0]:
                                return OVERFLOW_CANDIDATES
                            ws.c_i[nc] = i
                            ws.c_j[nc] = j
                            ws.c_w[nc] = w
                            nc += 1
            n_i = 0
            used_i = ws.sel_s
            used_j = ws.sel_t
            n_j = 0
            while n_i < A:
                best = -1
                for q in range(nc):
                    ok = True
                    for u in range(n_i):
                        if used_i[u] == ws.c_i[q]:
                            ok = False
                            break
                    if ok:
                        for u in range(n_j):
                            if used_j[u] == ws.c_j[q]:
                                ok = False
                                break
                    if ok and (best < 0 or ws.c_w[q] > ws.c_w[best]):
                        best = q
                if best < 0:
                    break
                used_i[n_i] = ws.c_i[best]
                n_i += 1
                used_j[n_j] = ws.c_j[best]
                n_j += 1
                ws.l_i[nl] = ws.c_i[best]
                ws.l_j[nl] = ws.c_j[best]
                ws.l_w[nl] = ws.c_w[best]
                nl += 1
        else:
            ns = _top_confident(ws, s0, s1, A, pcutoff, ws.sel_s)
            nt = _top_confident(ws, t0, t1, A, pcutoff, ws.sel_t)
            for r in range(ns):
                i = ws.sel_s[r]
                for c in range(nt):
                    j = ws.sel_t[c]
                    w = limb_affinity(paf, b, e, ws.j_row[i], ws.j_col[i], ws.j_row[j], ws.j_col[j], t_vals, scale)
                    ws.aff[r, c] = w
                    ws.aff64[r, c] = np.float64(w)
            npair = lsap_max_nb(ws.aff64, ns, nt, ws.lsap_w, ws.lsap_iw, ws.lsap_r, ws.lsap_c)
            for q in range(npair):
                r = ws.lsap_r[q]
                c = ws.lsap_c[q]
                w = ws.aff[r, c]
                if np.float64(w) >= min_affinity:
                    ws.l_i[nl] = ws.sel_s[r]
                    ws.l_j[nl] = ws.sel_t[c]
                    ws.l_w[nl] = w
                    nl += 1
    return nl


# ----------------------------------------------------------------------------- build_assemblies


@numba.njit(cache=True, nogil=True)
def _find(ws, i):
    while ws.parent[i] != i:
        ws.parent[i] = ws.parent[ws.parent[i]]
        i = ws.parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _remove_at(arr, n, q):
    for t in range(q, n - 1):
        arr[t] = arr[t + 1]
    return n - 1


@numba.njit(cache=True, nogil=True)
def _build_assemblies(ws, nj, nl, K, A, force_fusion):
    """DeepLabCut's ``build_assemblies``; the live assemblies are ``ws.alist[:n]``; returns ``(n, next free slot)``."""
    # lookup (per-joint links in link order) and flags
    for i in range(nj + 1):
        ws.adj_start[i] = 0
    for lk in range(nl):
        ws.l_alive[lk] = True
        ws.adj_start[ws.l_i[lk] + 1] += 1
        ws.adj_start[ws.l_j[lk] + 1] += 1
    for i in range(nj):
        ws.adj_start[i + 1] += ws.adj_start[i]
        ws.adj_fill[i] = ws.adj_start[i]
        ws.assembled[i] = False
        ws.seen[i] = False
        ws.parent[i] = i
        ws.comp_size[i] = 0
    for lk in range(nl):
        for i in (ws.l_i[lk], ws.l_j[lk]):
            ws.adj[ws.adj_fill[i]] = lk
            ws.adj_fill[i] += 1
    # connected components (networkx order: by first node in the link list)
    nn = 0
    for lk in range(nl):
        for i in (ws.l_i[lk], ws.l_j[lk]):
            if not ws.seen[i]:
                ws.seen[i] = True
                ws.node_order[nn] = i
                nn += 1
        ra = _find(ws, ws.l_i[lk])
        rb = _find(ws, ws.l_j[lk])
        if ra != rb:
            ws.parent[rb] = ra
    for q in range(nn):
        ws.comp_size[_find(ws, ws.node_order[q])] += 1
    n = 0
    slot = 0
    for q in range(nn):
        i = ws.node_order[q]
        root = _find(ws, i)
        if ws.comp_size[root] < 0:  # component already yielded
            continue
        size = ws.comp_size[root]
        ws.comp_size[root] = -1
        if size != K:
            continue
        s = slot
        slot += 1
        _reset(ws, s)
        for lk in range(nl):
            a = ws.l_i[lk]
            c = ws.l_j[lk]
            if a < c and _find(ws, a) == root:
                if _add_link(ws, s, lk):
                    ws.l_alive[lk] = False
        for m in range(ws.a_nmem[s]):
            ws.assembled[ws.a_mem[s, m]] = True
        ws.alist[n] = s
        n += 1
    if n == A:
        return n, slot

    # links by affinity, descending, stable
    for lk in range(nl):
        ws.l_order[lk] = lk
    for q in range(1, nl):
        v = ws.l_order[q]
        t = q - 1
        while t >= 0 and ws.l_w[ws.l_order[t]] < ws.l_w[v]:
            ws.l_order[t + 1] = ws.l_order[t]
            t -= 1
        ws.l_order[t + 1] = v
    for q in range(nl):
        lk = ws.l_order[q]
        if ws.assembled[ws.l_i[lk]] or ws.assembled[ws.l_j[lk]]:
            continue
        s = slot
        slot += 1
        _reset(ws, s)
        _add_link(ws, s, lk)
        _fill(ws, s, nl, K)
        for m in range(ws.a_nlinks[s]):
            ws.l_alive[ws.a_links[s, m]] = False
        for m in range(ws.a_nmem[s]):
            ws.assembled[ws.a_mem[s, m]] = True
        ws.alist[n] = s
        n += 1

    n_extra = n - A
    if n_extra > 0:
        if force_fusion:
            # stable sort by size, ascending
            for q in range(1, n):
                v = ws.alist[q]
                t = q - 1
                while t >= 0 and ws.a_nvis[ws.alist[t]] > ws.a_nvis[v]:
                    ws.alist[t + 1] = ws.alist[t]
                    t -= 1
                ws.alist[t + 1] = v
            for nrow in range(n_extra):
                s = ws.alist[nrow]
                n_cand = 0
                cand = -1
                best_d = 0.0
                best_nan = False
                for q in range(nrow, n):
                    a = ws.alist[q]
                    if _shares_label(ws, a, s):
                        continue
                    n_cand += 1
                    # np.argmin over nanmin distances: the first NaN if any, else the first minimum
                    d = np.nan
                    for k in range(K):
                        if ws.a_data[s, k, 0] != ws.a_data[s, k, 0] and ws.a_data[s, k, 1] != ws.a_data[s, k, 1]:
                            continue
                        dk = _nanmin_dist(ws, a, ws.a_data[s, k, 0], ws.a_data[s, k, 1])
                        if dk == dk and (d != d or dk < d):
                            d = dk
                    if cand < 0:
                        cand, best_d, best_nan = q, d, d != d
                    elif not best_nan and (d != d or d < best_d):
                        cand, best_d, best_nan = q, d, d != d
                if n_cand == 0:
                    continue
                new = slot
                slot += 1
                _combine(ws, new, ws.alist[cand], s)
                ws.alist[cand] = new
        else:
            for i in range(nj):
                ws.store[i] = -1
            for lk in range(nl):
                ws.l_used[lk] = False
            for q in range(n):
                s = ws.alist[q]
                for m in range(ws.a_nlinks[s]):
                    ws.l_used[ws.a_links[s, m]] = True
                if ws.a_nvis[s] != K:
                    for m in range(ws.a_nmem[s]):
                        ws.store[ws.a_mem[s, m]] = s
            tmp = slot
            slot += 1
            for lk in range(nl):
                if ws.l_used[lk]:
                    continue
                si = ws.store[ws.l_i[lk]]
                sj = ws.store[ws.l_j[lk]]
                if si < 0 or sj < 0 or _shares_label(ws, si, sj):
                    continue
                _combine(ws, tmp, si, sj)
                for q in range(n):
                    if ws.alist[q] == sj:
                        n = _remove_at(ws.alist, n, q)
                        break
                for m in range(ws.a_nmem[sj]):
                    ws.store[ws.a_mem[sj, m]] = si
                _copy(ws, si, tmp)

    for q in range(n):
        s = ws.alist[q]
        if ws.a_nvis[s] != K:
            _fill(ws, s, nl, K)
            for m in range(ws.a_nmem[s]):
                ws.assembled[ws.a_mem[s, m]] = True
    return n, slot


# ----------------------------------------------------------------------------- _assemble


@numba.njit(cache=True, nogil=True)
def assemble_image(ws, peaks, xy, conf, n_peaks, paf, b, graph, t_vals, scale, K, A, pcutoff, min_affinity,
                   min_n_links, max_overlap, greedy, force_fusion, add_discarded):
    """One image's peaks -> animals in ``ws.alist[:n]`` (DeepLabCut's output order). Returns ``n`` or an
    overflow code."""
    # joints: DeepLabCut's _flatten_detections (a part whose coordinates are all exactly 0 is skipped)
    nj = 0
    q = 0
    for k in range(K):
        ws.part_start[k] = nj
        q0 = q
        while q < n_peaks and peaks[q, 0] == k:
            q += 1
        anyc = False
        for t in range(q0, q):
            if xy[t, 0] != 0 or xy[t, 1] != 0:  # NaN != 0 is True, as np.any(NaN) is
                anyc = True
                break
        if not anyc:
            continue
        for t in range(q0, q):
            ws.j_x[nj] = xy[t, 0]
            ws.j_y[nj] = xy[t, 1]
            ws.j_conf[nj] = conf[t]
            ws.j_label[nj] = k
            ws.j_row[nj] = peaks[t, 1]
            ws.j_col[nj] = peaks[t, 2]
            nj += 1
    ws.part_start[K] = nj
    if nj == 0:
        return 0
    if K == 1:
        n = 0
        for j in range(nj):
            if np.float64(ws.j_conf[j]) >= pcutoff and n < A:
                _reset(ws, n)
                _add_joint(ws, n, j)
                ws.alist[n] = n
                n += 1
        return n
    if A == 1:
        _reset(ws, 0)
        for k in range(K):
            best = -1
            for j in range(ws.part_start[k], ws.part_start[k + 1]):
                if best < 0 or np.float64(ws.j_conf[j]) > np.float64(ws.j_conf[best]):
                    best = j
            if best >= 0:
                _add_joint(ws, 0, best)
        ws.alist[0] = 0
        return 1

    nl = _extract_links(ws, paf, b, graph, t_vals, scale, A, pcutoff, min_affinity, greedy)
    if nl < 0:
        return nl
    n, slot = _build_assemblies(ws, nj, nl, K, A, force_fusion)

    for j in range(nj):
        ws.discarded[j] = (not ws.assembled[j]) and np.isfinite(ws.j_conf[j])
    for q in range(n - 1, -1, -1):
        s = ws.alist[q]
        if (0 < ws.a_nlinks[s] < min_n_links) or ws.a_nvis[s] == 0:
            for m in range(ws.a_nlinks[s]):
                lk = ws.a_links[s, m]
                ws.discarded[ws.l_i[lk]] = True
                ws.discarded[ws.l_j[lk]] = True
            n = _remove_at(ws.alist, n, q)
    if 0 < max_overlap < 1:
        nl2 = n
        for q in range(n):
            ws.alist2[q] = ws.alist[q]
        n = 0
        while nl2 > 0:
            best = 0
            for q in range(1, nl2):
                if ws.a_aff[ws.alist2[q]] > ws.a_aff[ws.alist2[best]]:
                    best = q
            top = ws.alist2[best]
            nl2 = _remove_at(ws.alist2, nl2, best)
            ws.alist[n] = top
            n += 1
            for q in range(nl2 - 1, -1, -1):
                if _intersection(ws, top, ws.alist2[q]) >= max_overlap:
                    nl2 = _remove_at(ws.alist2, nl2, q)
    if n > A:
        for q in range(1, n):  # stable sort by size, descending
            v = ws.alist[q]
            t = q - 1
            while t >= 0 and ws.a_nvis[ws.alist[t]] < ws.a_nvis[v]:
                ws.alist[t + 1] = ws.alist[t]
                t -= 1
            ws.alist[t + 1] = v
        for q in range(A, n):
            s = ws.alist[q]
            for m in range(ws.a_nlinks[s]):
                lk = ws.a_links[s, m]
                ws.discarded[ws.l_i[lk]] = True
                ws.discarded[ws.l_j[lk]] = True
        n = A
    if add_discarded:
        for j in range(nj):
            ws.taken[j] = not ws.discarded[j]
        while True:
            jb = -1
            for j in range(nj):
                if not ws.taken[j] and (jb < 0 or np.float64(ws.j_conf[j]) > np.float64(ws.j_conf[jb])):
                    jb = j
            if jb < 0:
                break
            ws.taken[jb] = True
            lab = ws.j_label[jb]
            best = -1
            best_d = 0.0
            for q in range(n):
                s = ws.alist[q]
                if ws.a_vis[s, lab]:
                    continue
                d = _nanmin_dist(ws, s, np.float64(ws.j_x[jb]), np.float64(ws.j_y[jb]))
                if best < 0 or d < best_d:
                    best = s
                    best_d = d
            if best >= 0:
                _add_joint(ws, best, jb)
    return n
