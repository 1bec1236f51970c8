"""DeepLabCut 3.0.2's bottom-up multi-animal decoding in plain Python/NumPy: the definition the Numba
decoder (:mod:`.decoder`) is tested against.

A step-by-step re-expression (LGPL-3.0, like rtpose) of
``deeplabcut/pose_estimation_pytorch/models/predictors/paf_predictor.py``
(``PartAffinityFieldPredictor``: peaks, peak locations, PAF line integrals) and
``deeplabcut/core/inferenceutils.py`` (``Assembler._assemble``, ``extract_best_links``,
``build_assemblies``, ``_fill_assembly``, the fusion of superfluous assemblies, the minimum number of
links, non-maximum pose suppression with ``max_overlap``, ``add_discarded``). It uses Python sets,
dicts and ``heapq`` exactly where DeepLabCut does, so iteration orders and tie-breaking are DeepLabCut's
by construction; the float32 arithmetic of the PyTorch parts is reproduced operation by operation.

Input contract (rtpose's ONNX multi-animal outputs, see :mod:`.params`): per image, score maps
``(h, w, K)`` float32 already through DeepLabCut's sigmoid and Gaussian smoothing, ``locref``
``(h, w, 2K)`` raw (channel ``2k`` = dx, ``2k+1`` = dy of part ``k``), ``paf`` ``(h, w, 2E)``
(channel ``2e`` / ``2e+1`` = x / y component of limb ``e`` = ``params.graph[e]``).

DeepLabCut's behaviours kept on purpose (they decide which animals come out):

* peaks: ``max_pool2d(kernel_size=nms_radius, padding=nms_radius // 2)`` (an odd radius; an even one
  makes DeepLabCut fail), kept where ``>= float32(0.01)``; order ``torch.nonzero`` (part, row, col);
* a body part whose peaks all sit exactly at (0, 0) is ignored (``if not np.any(coords)``);
* in the first assembly pass, only links whose first joint has the lower index (``graph`` edge
  ``(s, t)`` with ``s < t``) are added to complete components;
* assemblies come out in non-maximum-suppression order (total affinity, descending), not by size;
* the affinity reported per animal is the mean of its links' affinities (``poses[..., 4]``).
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from math import sqrt

import numpy as np

from .lsap import lsap_buffers, lsap_max
from .paf import linspace_f32
from .params import AssemblyParams

#: DeepLabCut's hard-coded peak threshold (``AssemblyParams.peak_threshold``'s default), compared in
#: float32 like the torch tensor comparison.
PEAK_THRESHOLD = np.float32(0.01)
#: ``np.spacing(1, dtype=np.float32)``, added to every limb length.
LENGTH_EPS = np.spacing(np.float32(1))


def check_params(params: AssemblyParams) -> None:
    from ..errors import ConfigError

    if params.nms_radius < 1 or params.nms_radius % 2 == 0:
        raise ConfigError(f"nms_radius {params.nms_radius}: DeepLabCut's peak finder needs an odd radius "
                          "(an even one makes its max-pool output a different size and it fails)")
    if params.n_points < 2:
        raise ConfigError(f"n_points {params.n_points}: a PAF line integral needs at least 2 samples")


# --------------------------------------------------------------------------- peaks


def find_peaks(scores: np.ndarray, nms_radius: int, threshold=PEAK_THRESHOLD) -> np.ndarray:
    """Peaks of one image's smoothed ``(h, w, K)`` score maps -> ``(n, 3)`` int (part, row, col).

    ``max_pool2d(kernel=r, stride=1, padding=r//2)`` with -inf padding and NaN propagating; a cell is a
    peak where it equals its window's maximum and is ``>= threshold`` (float32); torch.nonzero order.
    """
    s = np.ascontiguousarray(np.moveaxis(np.asarray(scores, np.float32), -1, 0))  # (K, h, w)
    r = int(nms_radius)
    p = r // 2
    padded = np.pad(s, ((0, 0), (p, p), (p, p)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(padded, (r, r), axis=(1, 2))
    pooled = win.max(axis=(-2, -1))  # NaN propagates, like torch's max_pool2d
    maxima = s * (s == pooled).astype(np.float32)
    return np.argwhere(maxima >= np.float32(threshold))


def peak_locations(locref: np.ndarray, peaks: np.ndarray, stride: float, locref_stdev: float) -> np.ndarray:
    """DeepLabCut's ``calc_peak_locations``: ``(n, 2)`` float32 x, y in input pixels.

    ``stride * (col, row) + stride // 2 + locref * locref_stdev``, all in float32 as torch computes it.
    """
    st = np.float32(stride)
    half = np.floor_divide(st, np.float32(2))
    k, r, c = peaks[:, 0], peaks[:, 1], peaks[:, 2]
    dx = locref[r, c, 2 * k].astype(np.float32) * np.float32(locref_stdev)
    dy = locref[r, c, 2 * k + 1].astype(np.float32) * np.float32(locref_stdev)
    x = (st * c.astype(np.float32) + half) + dx
    y = (st * r.astype(np.float32) + half) + dy
    return np.stack([x, y], axis=1).astype(np.float32)


def limb_affinity(paf: np.ndarray, e: int, rs, cs, rt, ct, t_vals: np.ndarray, n_decimals: int):
    """One limb candidate's (affinity, length), DeepLabCut's ``compute_edge_costs`` in float32.

    Samples ``n_points`` cells on the segment between the two peaks' map cells (int32 truncation),
    integrates the PAF along it with the trapezoid rule, divides the norm by the length (+ eps) and
    rounds both to ``n_decimals`` (half to even, like torch.round).
    """
    h, w = paf.shape[:2]
    r0, c0, r1, c1 = (np.float32(v) for v in (rs, cs, rt, ct))
    dr, dc = r1 - r0, c1 - c0
    length = np.float32(sqrt(float(dr) * float(dr) + float(dc) * float(dc))) + LENGTH_EPS
    n = t_vals.shape[0]
    rows = np.empty(n, np.int64)
    cols = np.empty(n, np.int64)
    for i in range(n):
        rows[i] = min(max(int(r0 + t_vals[i] * dr), 0), h - 1)  # int32 cast truncates toward zero
        cols[i] = min(max(int(c0 + t_vals[i] * dc), 0), w - 1)
    vx = paf[rows, cols, 2 * e].astype(np.float32)
    vy = paf[rows, cols, 2 * e + 1].astype(np.float32)
    ix = np.float32(0.0)
    iy = np.float32(0.0)
    for i in range(n - 1):
        ix = np.float32(ix + (vx[i] + vx[i + 1]) * np.float32(cols[i + 1] - cols[i]))
        iy = np.float32(iy + (vy[i] + vy[i + 1]) * np.float32(rows[i + 1] - rows[i]))
    ix = ix / np.float32(2.0)
    iy = iy / np.float32(2.0)
    norm = np.float32(sqrt(float(ix) * float(ix) + float(iy) * float(iy)))
    aff = norm / length
    scale = np.float32(10 ** n_decimals)
    aff = np.round(aff * scale) / scale
    length = np.round(length * scale) / scale
    return np.float32(aff), np.float32(length)


def edge_costs(paf, peaks, graph, n_points: int, n_decimals: int) -> dict:
    """``{edge e: {"m1": (n_s, n_t) float32 affinities, "distance": lengths}}`` for one image.

    Only edges whose two body parts both have peaks get an entry (as in DeepLabCut).
    """
    t_vals = linspace_f32(n_points)
    costs = {}
    for e, (s, t) in enumerate(graph):
        src = peaks[peaks[:, 0] == s]
        dst = peaks[peaks[:, 0] == t]
        if not len(src) or not len(dst):
            continue
        m1 = np.empty((len(src), len(dst)), np.float32)
        dist = np.empty_like(m1)
        for i, (_, rs, cs) in enumerate(src):
            for j, (_, rt, ct) in enumerate(dst):
                m1[i, j], dist[i, j] = limb_affinity(paf, e, rs, cs, rt, ct, t_vals, n_decimals)
        costs[e] = {"m1": m1, "distance": dist}
    return costs


# --------------------------------------------------------------------------- assembly (inferenceutils.py)


class Joint:
    __slots__ = ("pos", "confidence", "label", "idx", "group")

    def __init__(self, pos, confidence, label, idx, group=-1):
        self.pos, self.confidence, self.label, self.idx, self.group = pos, confidence, label, idx, group


class Link:
    def __init__(self, j1, j2, affinity):
        self.j1, self.j2, self.affinity = j1, j2, affinity

    @property
    def idx(self):
        return self.j1.idx, self.j2.idx


class Assembly:
    def __init__(self, size):
        self.data = np.full((size, 4), np.nan)
        self._affinity = 0.0
        self._links = []
        self._visible = set()
        self._idx = set()

    def __len__(self):
        return len(self._visible)

    def __contains__(self, other):
        return bool(self._visible.intersection(other._visible))

    def __add__(self, other):
        if other in self:
            raise ValueError("Assemblies contain shared joints.")
        assembly = Assembly(self.data.shape[0])
        for link in self._links + other._links:
            assembly.add_link(link)
        return assembly

    @property
    def xy(self):
        return self.data[:, :2]

    @property
    def extent(self):
        bbox = np.empty(4)
        bbox[:2] = np.nanmin(self.xy, axis=0)
        bbox[2:] = np.nanmax(self.xy, axis=0)
        return bbox

    @property
    def affinity(self) -> float:
        n = len(self._links)
        return float(self._affinity / n) if n else 0.0

    @property
    def n_links(self):
        return len(self._links)

    def intersection_with(self, other):
        x11, y11, x21, y21 = self.extent
        x12, y12, x22, y22 = other.extent
        x1, y1, x2, y2 = max(x11, x12), max(y11, y12), min(x21, x22), min(y21, y22)
        if x2 < x1 or y2 < y1:
            return 0
        ll = np.array([x1, y1])
        ur = np.array([x2, y2])
        xy1 = self.xy[~np.isnan(self.xy).any(axis=1)]
        xy2 = other.xy[~np.isnan(other.xy).any(axis=1)]
        in1 = np.all((xy1 >= ll) & (xy1 <= ur), axis=1).sum()
        in2 = np.all((xy2 >= ll) & (xy2 <= ur), axis=1).sum()
        return min(in1 / len(self), in2 / len(other))

    def add_joint(self, joint):
        if joint.label in self._visible or joint.label is None:
            return False
        self.data[joint.label] = *joint.pos, joint.confidence, joint.group
        self._visible.add(joint.label)
        self._idx.add(joint.idx)
        return True

    def add_link(self, link):
        i1, i2 = link.idx
        if i1 in self._idx and i2 in self._idx:
            self._affinity += float(link.affinity)  # NumPy 1.x: python float + float32 -> float64
            self._links.append(link)
            return False
        if link.j1.label in self._visible and link.j2.label in self._visible:
            return False
        self.add_joint(link.j1)
        self.add_joint(link.j2)
        self._affinity += float(link.affinity)
        self._links.append(link)
        return True


def _components(links):
    """networkx.connected_components(nx.Graph(edges)) as lists, in networkx's order (first node seen)."""
    order = []
    adj = defaultdict(list)
    for link in links:
        i, j = link.idx
        for n in (i, j):
            if n not in adj:
                order.append(n)
                adj[n]  # noqa: B018 (creates the key in insertion order)
        adj[i].append(j)
        adj[j].append(i)
    seen = set()
    comps = []
    for n in order:
        if n in seen:
            continue
        comp = {n}
        stack = [n]
        while stack:
            v = stack.pop()
            for w in adj[v]:
                if w not in comp:
                    comp.add(w)
                    stack.append(w)
        seen |= comp
        comps.append(comp)
    return comps


class Assembler:
    """DeepLabCut's ``Assembler`` without calibration (no KDE), identity or temporal windows: exactly the
    configuration ``PartAffinityFieldPredictor`` builds (``Assembler.empty``)."""

    def __init__(self, params: AssemblyParams, n_multibodyparts: int):
        self.max_n_individuals = params.num_animals
        self.n_multibodyparts = n_multibodyparts
        self.graph = list(params.graph)
        self.paf_inds = list(range(len(self.graph)))
        self.greedy = params.greedy
        self.pcutoff = params.pcutoff
        self.min_affinity = params.min_affinity
        self.min_n_links = params.min_n_links
        self.max_overlap = params.max_overlap
        self.force_fusion = params.force_fusion
        self.add_discarded = params.add_discarded
        m = max(params.num_animals, 1)
        self._lsap = lsap_buffers(m) + (np.empty(m, np.int64), np.empty(m, np.int64))

    def extract_best_links(self, joints_dict, costs):
        links = []
        for ind in self.paf_inds:
            s, t = self.graph[ind]
            dets_s = joints_dict.get(s, None)
            dets_t = joints_dict.get(t, None)
            if dets_s is None or dets_t is None or ind not in costs:
                continue
            lengths = costs[ind]["distance"]
            if np.isinf(lengths).all():
                continue
            aff = costs[ind]["m1"].copy()
            aff[np.isnan(aff)] = 0
            if self.greedy:
                conf = np.asarray([[ds.confidence * dt.confidence for dt in dets_t] for ds in dets_s])
                rows, cols = np.where((conf >= self.pcutoff * self.pcutoff) & (aff >= self.min_affinity))
                candidates = sorted(zip(rows, cols, aff[rows, cols]), key=lambda x: x[2], reverse=True)
                i_seen, j_seen = set(), set()
                for i, j, w in candidates:
                    if i not in i_seen and j not in j_seen:
                        i_seen.add(i)
                        j_seen.add(j)
                        links.append(Link(dets_s[i], dets_t[j], w))
                        if len(i_seen) == self.max_n_individuals:
                            break
            else:
                inds_s = sorted(range(len(dets_s)), key=lambda x: dets_s[x].confidence,
                                reverse=True)[: self.max_n_individuals]
                inds_t = sorted(range(len(dets_t)), key=lambda x: dets_t[x].confidence,
                                reverse=True)[: self.max_n_individuals]
                keep_s = [i for i in inds_s if dets_s[i].confidence >= self.pcutoff]
                keep_t = [i for i in inds_t if dets_t[i].confidence >= self.pcutoff]
                sub = aff[np.ix_(keep_s, keep_t)]
                work, iwork, out_r, out_c = self._lsap
                n = lsap_max(sub.astype(np.float64), len(keep_s), len(keep_t), work, iwork, out_r, out_c)
                for row, col in zip(out_r[:n], out_c[:n]):
                    w = sub[row, col]
                    if w >= self.min_affinity:
                        links.append(Link(dets_s[keep_s[row]], dets_t[keep_t[col]], w))
        return links

    def _fill_assembly(self, assembly, lookup, assembled):
        stack = []
        visited = set()
        counter = itertools.count()

        def push_to_stack(i):
            for j, link in lookup[i].items():
                if j in assembly._idx or link.idx in visited:
                    continue
                heapq.heappush(stack, (-link.affinity, next(counter), link))
                visited.add(link.idx)

        for idx in assembly._idx:
            push_to_stack(idx)
        while stack and len(assembly) < self.n_multibodyparts:
            _, _, best = heapq.heappop(stack)
            i, j = best.idx
            if i in assembly._idx:
                new_ind = j
            elif j in assembly._idx:
                new_ind = i
            else:
                continue
            if new_ind in assembled:
                continue
            assembly.add_link(best)
            push_to_stack(new_ind)

    def build_assemblies(self, links):
        lookup = defaultdict(dict)
        for link in links:
            i, j = link.idx
            lookup[i][j] = link
            lookup[j][i] = link
        assemblies = []
        assembled = set()
        for chain in _components(links):
            if len(chain) == self.n_multibodyparts:
                assembly = Assembly(self.n_multibodyparts)
                for link in links:
                    i, j = link.idx
                    if i in chain and j in chain and i < j:  # (i, j) in sorted edges of G(chain)
                        if assembly.add_link(link):
                            lookup[i].pop(j)
                            lookup[j].pop(i)
                assembled.update(assembly._idx)
                assemblies.append(assembly)
        if len(assemblies) == self.max_n_individuals:
            return assemblies, assembled

        for link in sorted(links, key=lambda x: x.affinity, reverse=True):
            if any(i in assembled for i in link.idx):
                continue
            assembly = Assembly(self.n_multibodyparts)
            assembly.add_link(link)
            self._fill_assembly(assembly, lookup, assembled)
            for lk in assembly._links:
                i, j = lk.idx
                lookup[i].pop(j)
                lookup[j].pop(i)
            assembled.update(assembly._idx)
            assemblies.append(assembly)

        n_extra = len(assemblies) - self.max_n_individuals
        if n_extra > 0:
            if self.force_fusion:
                assemblies = sorted(assemblies, key=len)
                for nrow in range(n_extra):
                    assembly = assemblies[nrow]
                    candidates = [a for a in assemblies[nrow:] if assembly not in a]
                    if not candidates:
                        continue
                    if len(candidates) == 1:
                        candidate = candidates[0]
                    else:
                        dists = []
                        for cand in candidates:
                            d = np.sqrt(((assembly.xy[:, None, :] - cand.xy[None, :, :]) ** 2).sum(-1))
                            dists.append(np.nanmin(d))
                        candidate = candidates[int(np.argmin(dists))]
                    ind = next(k for k, a in enumerate(assemblies) if a is candidate)
                    assemblies[ind] = assemblies[ind] + assembly
            else:
                store = dict()
                for assembly in assemblies:
                    if len(assembly) != self.n_multibodyparts:
                        for i in assembly._idx:
                            store[i] = assembly
                used = {id(link) for assembly in assemblies for link in assembly._links}
                unconnected = [link for link in links if id(link) not in used]
                for link in unconnected:
                    i, j = link.idx
                    if i in store and j in store and store[j] not in store[i]:
                        temp = store[i] + store[j]
                        store[i].__dict__.update(temp.__dict__)
                        gone = store[j]
                        assemblies.pop(next(k for k, a in enumerate(assemblies) if a is gone))
                        for idx in gone._idx:
                            store[idx] = store[i]

        for assembly in assemblies:
            if len(assembly) != self.n_multibodyparts:
                self._fill_assembly(assembly, lookup, assembled)
                assembled.update(assembly._idx)
        return assemblies, assembled

    def assemble(self, coords, confidence):
        """``coords[k]``: ``(n_k, 2)`` float32 x, y of part ``k``'s peaks; ``confidence[k]``: ``(n_k,)``.

        Returns the list of assemblies, in DeepLabCut's output order.
        """
        costs = self._costs
        joints = []
        ind = 0
        for k, (xy, p) in enumerate(zip(coords, confidence)):
            if not np.any(xy):
                continue
            for pos, c in zip(xy, p):
                joints.append(Joint((pos[0], pos[1]), float(c), k, ind))
                ind += 1
        if not joints:
            return []
        bag = defaultdict(list)
        for joint in joints:
            bag[joint.label].append(joint)
        assembled = set()
        if not any(i in bag for i in range(self.n_multibodyparts)):
            return []
        if self.n_multibodyparts == 1:
            assemblies = []
            for joint in bag[0]:
                if joint.confidence >= self.pcutoff:
                    ass = Assembly(1)
                    ass.add_joint(joint)
                    assemblies.append(ass)
            return assemblies[: self.max_n_individuals]  # DeepLabCut would fail on more (index error)
        if self.max_n_individuals == 1:
            ass = Assembly(self.n_multibodyparts)
            for k in range(self.n_multibodyparts):
                if bag[k]:
                    ass.add_joint(max(bag[k], key=lambda x: x.confidence))
            return [ass]
        links = self.extract_best_links(bag, costs)
        assemblies, assembled_ = self.build_assemblies(links)
        assembled.update(assembled_)

        discarded = set(j for j in joints if j.idx not in assembled and np.isfinite(j.confidence))
        for assembly in assemblies[::-1]:
            if 0 < assembly.n_links < self.min_n_links or not len(assembly):
                for link in assembly._links:
                    discarded.update((link.j1, link.j2))
                assemblies.remove(assembly)
        if 0 < self.max_overlap < 1:
            lst = [(ass._affinity, ass) for ass in assemblies]
            assemblies = []
            while lst:
                temp = max(lst, key=lambda x: x[0])
                lst.remove(temp)
                assemblies.append(temp[1])
                for pair in lst[::-1]:
                    if temp[1].intersection_with(pair[1]) >= self.max_overlap:
                        lst.remove(pair)
        if len(assemblies) > self.max_n_individuals:
            assemblies = sorted(assemblies, key=len, reverse=True)
            for assembly in assemblies[self.max_n_individuals:]:
                for link in assembly._links:
                    discarded.update((link.j1, link.j2))
            assemblies = assemblies[: self.max_n_individuals]
        if self.add_discarded and discarded:
            # DeepLabCut iterates a set of joints here; equal confidences are taken by joint index.
            for joint in sorted(sorted(discarded, key=lambda x: x.idx), key=lambda x: x.confidence, reverse=True):
                dists = []
                for i, assembly in enumerate(assemblies):
                    if joint.label in assembly._visible:
                        continue
                    d = np.sqrt(((assembly.xy - np.asarray(joint.pos, np.float64)) ** 2).sum(-1))
                    dists.append((i, np.nanmin(d)))
                if not dists:
                    continue
                ind, _ = sorted(dists, key=lambda x: x[1])[0]
                assemblies[ind].add_joint(joint)
        return assemblies


# --------------------------------------------------------------------------- whole decode


def decode_image(scores, locref, paf, params: AssemblyParams):
    """One image -> ``(assemblies as (A', K, 3) float64 x/y/likelihood, affinities (A',) float64)``."""
    check_params(params)
    k = scores.shape[-1]
    peaks = find_peaks(scores, params.nms_radius, params.peak_threshold)
    if not len(peaks):
        return np.empty((0, k, 3)), np.empty(0)
    pos = peak_locations(locref, peaks, params.stride, params.locref_stdev)
    prob = scores[peaks[:, 1], peaks[:, 2], peaks[:, 0]].astype(np.float32)
    coords = [pos[peaks[:, 0] == j] for j in range(k)]
    conf = [prob[peaks[:, 0] == j] for j in range(k)]
    asm = Assembler(params, k)
    asm._costs = edge_costs(paf, peaks, params.graph, params.n_points, params.n_decimals)
    assemblies = asm.assemble(coords, conf)
    out = np.full((len(assemblies), k, 3), np.nan)
    aff = np.empty(len(assemblies))
    for a, ass in enumerate(assemblies):
        out[a] = ass.data[:, :3]
        aff[a] = ass.affinity
    if params.clip_scores:
        out[..., 2] = np.clip(out[..., 2], 0, 1)
    return out, aff


def decode_reference(scores, locref, paf, params: AssemblyParams, n_unique: int = 0):
    """A batch -> ``(poses (B, A*K + n_unique, 3) float64, n_animals (B,) int, affinity (B, A))``.

    Animals in DeepLabCut's order in the first ``n_animals`` slots; empty slots, missing parts and the
    unique rows (decoded elsewhere) are NaN. Allocates: for tests and as the definition.
    """
    b, _, _, k = scores.shape
    a = params.num_animals
    poses = np.full((b, a * k + n_unique, 3), np.nan)
    n_animals = np.zeros(b, np.int64)
    affinity = np.full((b, a), np.nan)
    # DeepLabCut's batch-level quirk: `if ~torch.any(peaks)` also holds when the only peak of the whole
    # batch is at (image 0, part 0, row 0, col 0).
    all_peaks = [find_peaks(scores[i], params.nms_radius, params.peak_threshold) for i in range(b)]
    total = sum(len(p) for p in all_peaks)
    if total == 0 or (total == 1 and len(all_peaks[0]) == 1 and not all_peaks[0].any()):
        return poses, n_animals, affinity
    for i in range(b):
        animals, aff = decode_image(scores[i], locref[i], paf[i], params)
        n = len(animals)
        poses[i, : n * k] = animals.reshape(n * k, 3)
        n_animals[i] = n
        affinity[i, :n] = aff
    return poses, n_animals, affinity
