"""Multi-animal decoding: Numba == plain-Python reference == DeepLabCut 3.0.2's own predictor.

The fixture (tests/data/ma_decode/dlc302_paf_cases.npz) holds synthetic maps and what DeepLabCut 3.0.2's
``PartAffinityFieldPredictor`` made of them (its peaks, refined positions, PAF cost matrices and final
poses); tests/data/ma_decode/build_fixtures.py rebuilds it with DeepLabCut's side venv.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rtpose.decode import DecodeInputError
from rtpose.errors import ConfigError
from rtpose.multianimal import reference as R
from rtpose.multianimal.decoder import MultiAnimalDecoder, warmup
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.lsap import lsap_buffers, lsap_max, lsap_max_nb
from rtpose.multianimal.paf import limb_affinity, linspace_f32
from rtpose.multianimal.params import AssemblyParams
from rtpose.multianimal.peaks import find_peaks_image, peak_positions
from rtpose.multianimal.pyset import set_order, set_scratch

FIXTURE = Path(__file__).parent / "data" / "ma_decode" / "dlc302_paf_cases.npz"


@pytest.fixture(scope="module")
def fx():
    if not FIXTURE.exists():
        pytest.skip(f"missing {FIXTURE} (build it with tests/data/ma_decode/build_fixtures.py)")
    return np.load(FIXTURE)


def _cases():
    if not FIXTURE.exists():
        return ["missing"]
    with np.load(FIXTURE) as z:
        return [c["name"] for c in json.loads(str(z["cases"]))]


def _case(fx, name):
    meta = {c["name"]: c for c in json.loads(str(fx["cases"]))}[name]
    p = AssemblyParams(**meta["params"])
    g = {k[len(name) + 1:]: fx[k] for k in fx.files if k.startswith(name + "_")}
    return p, g


def _layout(p, K, U=0):
    return AnimalLayout([f"mouse{i}" for i in range(p.num_animals)], [f"p{k}" for k in range(K)],
                        [f"u{k}" for k in range(U)])


def _assert_like_dlc(poses, n_animals, affinity, dlc, K):
    """rtpose's flat poses vs DeepLabCut's (B, A, K, 5) poses: same animals, same order, same values."""
    B, A = dlc.shape[:2]
    dlc_n = (dlc[:, :, 0, 0] != -1).sum(1)  # DeepLabCut fills -1 where no animal was assembled
    np.testing.assert_array_equal(n_animals, dlc_n)
    for b in range(B):
        n = dlc_n[b]
        mine = poses[b, : A * K].reshape(A, K, 3)
        assert np.isnan(mine[n:]).all()
        theirs = dlc[b, :n].astype(np.float64)
        missing = np.isnan(theirs[..., 0])  # DeepLabCut: x = y = NaN, likelihood 0 for a missing part
        assert (np.isnan(mine[:n, :, 0]) == missing).all()
        assert np.isnan(mine[:n][missing]).all()
        # exact: DeepLabCut's float32 numbers, held in float64 here
        np.testing.assert_array_equal(mine[:n][~missing], theirs[..., :3][~missing])
        np.testing.assert_array_equal(np.float32(affinity[b, :n]), dlc[b, :n, 0, 4])


@pytest.mark.parametrize("name", _cases())
def test_reference_steps_match_deeplabcut(fx, name):
    p, g = _case(fx, name)
    B, h, w, K = g["scores"].shape
    peaks = [R.find_peaks(g["scores"][b], p.nms_radius) for b in range(B)]
    flat = np.concatenate([np.c_[np.full(len(q), b), q] for b, q in enumerate(peaks)])
    np.testing.assert_array_equal(flat, g["peaks"])
    if len(g["peak_xy"]):
        xy = np.concatenate([R.peak_locations(g["locref"][b], peaks[b], p.stride, p.locref_stdev) for b in range(B)])
        np.testing.assert_array_equal(xy, g["peak_xy"])
    o = 0
    costs = {b: R.edge_costs(g["paf"][b], peaks[b], p.graph, p.n_points, p.n_decimals) for b in range(B)}
    for b, e, ns, nt in g["cost_meta"]:
        np.testing.assert_array_equal(costs[b][e]["m1"], g["cost_m1"][o:o + ns * nt].reshape(ns, nt))
        np.testing.assert_array_equal(costs[b][e]["distance"], g["cost_dist"][o:o + ns * nt].reshape(ns, nt))
        o += ns * nt
    assert sum(len(c) for c in costs.values()) == len(g["cost_meta"])


@pytest.mark.parametrize("name", _cases())
def test_reference_matches_deeplabcut(fx, name):
    p, g = _case(fx, name)
    K = g["scores"].shape[3]
    poses, n, aff = R.decode_reference(g["scores"], g["locref"], g["paf"], p)
    _assert_like_dlc(poses, n, aff, g["poses"], K)


@pytest.mark.parametrize("name", _cases())
def test_numba_matches_reference_and_deeplabcut(fx, name):
    p, g = _case(fx, name)
    B, h, w, K = g["scores"].shape
    # tiny buffers: every case with peaks makes the decoder grow them once, and stay exact
    dec = MultiAnimalDecoder(p, _layout(p, K), B, max_peaks=8, max_candidates=4)
    out = np.empty((B, dec.layout.n_flat, 3))
    n, aff = dec.decode(g["scores"], g["locref"], g["paf"], out)
    _assert_like_dlc(out, n, aff, g["poses"], K)
    ref, rn, raff = R.decode_reference(g["scores"], g["locref"], g["paf"], p)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(n, rn)
    np.testing.assert_array_equal(aff, raff)
    # again, into a reused buffer full of garbage, with grown buffers
    out[:] = 123.0
    n2, aff2 = dec.decode(g["scores"], g["locref"], g["paf"], out)
    np.testing.assert_array_equal(out, ref)


def test_unique_bodyparts_from_their_own_head(fx):
    """DeepLabCut 3 decodes unique parts with a separate HeatmapPredictor head: rows A*K.. of the flat pose."""
    p, g = _case(fx, "chain4_a3")
    B, h, w, K = g["scores"].shape
    U = g["unique_scores"].shape[3]
    lay = _layout(p, K, U)
    dec = MultiAnimalDecoder(p, lay, B)
    out = np.empty((B, lay.n_flat, 3))
    n, aff = dec.decode(g["scores"], g["locref"], g["paf"], out, unique_scores=g["unique_scores"],
                        unique_locref=g["unique_locref"])
    _assert_like_dlc(out, n, aff, g["poses"], K)
    np.testing.assert_allclose(lay.unique(out), g["unique_poses"][:, 0].astype(np.float64), rtol=0, atol=1e-4)
    with pytest.raises(DecodeInputError, match="unique"):
        dec.decode(g["scores"], g["locref"], g["paf"], out)


def test_decode_part_of_a_batch_and_no_allocation(fx):
    p, g = _case(fx, "full5_a4")
    B, h, w, K = g["scores"].shape
    dec = MultiAnimalDecoder(p, _layout(p, K), B, max_peaks=256)
    out = np.full((B, dec.layout.n_flat, 3), 7.0)
    dec.decode(g["scores"], g["locref"], g["paf"], out, n=2)
    ref, rn, _ = R.decode_reference(g["scores"][:2], g["locref"][:2], g["paf"][:2], p)
    np.testing.assert_array_equal(out[:2], ref)
    assert (out[2:] == 7.0).all()
    from numba.core.runtime import _nrt_python, rtsys

    was_on = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        # Calling a Numba function from Python wraps each array argument once (NRT counts those as
        # allocations): a whole batch must cost exactly what an empty call costs.
        a0 = rtsys.get_allocation_stats().alloc
        dec.decode(g["scores"], g["locref"], g["paf"], out, n=0)
        a1 = rtsys.get_allocation_stats().alloc
        dec.decode(g["scores"], g["locref"], g["paf"], out)
        a2 = rtsys.get_allocation_stats().alloc
    finally:
        if not was_on:
            _nrt_python.memsys_disable_stats()
    assert a2 - a1 == a1 - a0, "the Numba decode allocated inside the kernel"
    assert dec.n_regrow == 0


# ----------------------------------------------------------------------------- steps


def test_linspace_is_torchs():
    torch_10 = ['0x0.0p+0', '0x1.c71c72p-4', '0x1.c71c72p-3', '0x1.555556p-2', '0x1.c71c72p-2',
                '0x1.1c71c8p-1', '0x1.555556p-1', '0x1.8e38e4p-1', '0x1.c71c72p-1', '0x1.0p+0']
    np.testing.assert_array_equal(linspace_f32(10), np.array([float.fromhex(v) for v in torch_10], np.float32))


def _random_maps(rng, B, h, w, K):
    s = rng.random((B, h, w, K)).astype(np.float32) * np.float32(0.05)
    for _ in range(6 * B):
        b, r, c, k = rng.integers(B), rng.integers(h), rng.integers(w), rng.integers(K)
        s[b, r, c, k] = rng.choice([0.5, 0.9, 0.01, np.float32(0.01)])
    s[0, 3, 3:6, 0] = 0.7  # a plateau: every cell of it is a peak (torch.eq with the pooled max)
    s[0, 0, 0, 1] = 0.8  # corner
    s[-1, h - 1, w - 1, K - 1] = 0.6
    s[0, 5, 5, 1] = np.nan  # NaN suppresses its window and is never a peak
    s[0, 6, 6, 1] = 0.9
    return s


@pytest.mark.parametrize("radius", [1, 3, 5, 7])
def test_peaks_numba_equals_reference(radius):
    rng = np.random.default_rng(radius)
    B, h, w, K = 3, 17, 23, 4
    s = _random_maps(rng, B, h, w, K)
    locref = rng.normal(0, 1, (B, h, w, 2 * K)).astype(np.float32)
    cap = 2000
    peaks, tmp = np.empty((cap, 3), np.int32), np.empty((cap, 3), np.int32)
    xy, conf = np.empty((cap, 2), np.float32), np.empty(cap, np.float32)
    for b in range(B):
        n = find_peaks_image(s, b, radius, 0.01, tmp, peaks)
        ref = R.find_peaks(s[b], radius)
        np.testing.assert_array_equal(peaks[:n], ref)
        peak_positions(s, locref, b, peaks, n, 8.0, 7.2801, xy, conf)
        np.testing.assert_array_equal(xy[:n], R.peak_locations(locref[b], ref, 8.0, 7.2801))
        np.testing.assert_array_equal(conf[:n], s[b][ref[:, 1], ref[:, 2], ref[:, 0]])
        if n:
            assert find_peaks_image(s, b, radius, 0.01, tmp[: n - 1], peaks[: n - 1]) == -n  # too small: says so
    assert (R.find_peaks(s[0], 3)[:, 0] == 1).sum() >= 1
    assert not any((q[0] == 1 and abs(q[1] - 5) <= 1 and abs(q[2] - 5) <= 1) for q in R.find_peaks(s[0], 3))


def test_limb_affinity_numba_equals_reference():
    rng = np.random.default_rng(3)
    h, w, E = 13, 19, 3
    paf = rng.normal(0, 1, (1, h, w, 2 * E)).astype(np.float32)
    paf[0, 4, 4, 0] = np.nan
    for n_points in (2, 3, 10, 17):
        t = linspace_f32(n_points)
        for _ in range(300):
            e = int(rng.integers(E))
            rs, cs, rt, ct = int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(h)), int(rng.integers(w))
            ref, _ = R.limb_affinity(paf[0], e, rs, cs, rt, ct, t, 3)
            want = 0 if np.isnan(ref) else ref
            assert limb_affinity(paf, 0, e, rs, cs, rt, ct, t, np.float32(1000.0)) == want
            assert limb_affinity(paf, 0, e, rs, cs, rt, ct, t, 1000.0) == want, (n_points, rs, cs, rt, ct)


def test_assignment_equals_scipy_with_ties():
    linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment
    rng = np.random.default_rng(0)
    work, iwork = lsap_buffers(7)
    r, c = np.empty(7, np.int64), np.empty(7, np.int64)
    for trial in range(3000):
        nr, nc = rng.integers(1, 7, 2)
        a = (rng.choice([0.0, 0.5, 1.0, 0.98, 0.05], (nr, nc)) if trial % 2
             else np.float32(np.round(rng.random((nr, nc)), 2)).astype(np.float64))
        rr, cc = linear_sum_assignment(a, maximize=True)
        f = lsap_max_nb if trial % 3 else lsap_max
        n = f(a, nr, nc, work, iwork, r, c)
        np.testing.assert_array_equal(r[:n], rr)
        np.testing.assert_array_equal(c[:n], cc)


def test_set_order_is_cpythons():
    rng = np.random.default_rng(1)
    t1, t2 = set_scratch(40)
    out = np.empty(40, np.int64)
    for _ in range(2000):
        n = int(rng.integers(1, 40))
        vals = rng.choice(int(rng.choice([40, 64, 500, 10000])), n, replace=False)
        s = set()
        for v in vals.tolist():
            s.add(v)
        m = set_order(vals.astype(np.int64), n, t1, t2, out)
        assert out[:m].tolist() == list(s)


# ----------------------------------------------------------------------------- errors


def test_bad_configurations_are_refused():
    lay = _layout(AssemblyParams(num_animals=2, graph=((0, 1),), stride=8.0), 2)
    with pytest.raises(ConfigError, match="odd"):
        MultiAnimalDecoder(AssemblyParams(num_animals=2, graph=((0, 1),), stride=8.0, nms_radius=4), lay, 1)
    with pytest.raises(ConfigError, match="twice"):
        MultiAnimalDecoder(AssemblyParams(num_animals=2, graph=((0, 1), (1, 0)), stride=8.0), lay, 1)
    with pytest.raises(ConfigError, match="body parts"):
        MultiAnimalDecoder(AssemblyParams(num_animals=2, graph=((0, 2),), stride=8.0), lay, 1)
    with pytest.raises(ConfigError, match="individuals"):
        MultiAnimalDecoder(AssemblyParams(num_animals=3, graph=((0, 1),), stride=8.0), lay, 1)
    with pytest.raises(ConfigError, match="peak_threshold"):
        MultiAnimalDecoder(AssemblyParams(num_animals=2, graph=((0, 1),), stride=8.0, peak_threshold=0.0), lay, 1)
    with pytest.raises(ConfigError, match="smoothed"):
        MultiAnimalDecoder(AssemblyParams(num_animals=2, graph=((0, 1),), stride=8.0, smoothed_in_graph=False),
                           lay, 1)


def test_bad_arrays_are_refused():
    p = AssemblyParams(num_animals=2, graph=((0, 1),), stride=8.0)
    lay = _layout(p, 2)
    dec = MultiAnimalDecoder(p, lay, 2)
    s = np.zeros((2, 6, 6, 2), np.float32)
    lr = np.zeros((2, 6, 6, 4), np.float32)
    pf = np.zeros((2, 6, 6, 2), np.float32)
    out = np.empty((2, lay.n_flat, 3))
    dec.decode(s, lr, pf, out)
    with pytest.raises(DecodeInputError, match="part-affinity"):
        dec.decode(s, lr, np.zeros((2, 6, 6, 4), np.float32), out)
    with pytest.raises(DecodeInputError, match="float32"):
        dec.decode(s.astype(np.float64), lr, pf, out)
    with pytest.raises(DecodeInputError, match="out must"):
        dec.decode(s, lr, pf, np.empty((2, lay.n_flat, 2)))
    with pytest.raises(DecodeInputError, match="max_batch"):
        dec.decode(np.zeros((3, 6, 6, 2), np.float32), np.zeros((3, 6, 6, 4), np.float32),
                   np.zeros((3, 6, 6, 2), np.float32), np.empty((3, lay.n_flat, 3)))


def test_warmup_compiles():
    warmup(AssemblyParams(num_animals=2, graph=((0, 1),), stride=8.0), AnimalLayout(("a", "b"), ("x", "y"), ("u",)))


# ----------------------------------------------------------------------------- random maps (no DeepLabCut)


def _synthetic_batch(rng, B, h, w, K, graph, n_animals, p_missing):
    """Score maps (already 'smoothed'), locref and PAF for random animals: NumPy only."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    scores = rng.uniform(0, 0.006, (B, h, w, K))
    locref = rng.normal(0, 0.3, (B, h, w, 2 * K))
    paf = rng.normal(0, 0.1, (B, h, w, 2 * len(graph)))
    for b in range(B):
        for _ in range(rng.integers(n_animals[0], n_animals[1] + 1)):
            c = rng.uniform([2, 2], [w - 3, h - 3])
            pts = np.clip(c + rng.normal(0, 3, (K, 2)), [0, 0], [w - 1, h - 1])
            for k in range(K):
                if rng.random() < p_missing:
                    pts[k] = np.nan
                    continue
                g = rng.uniform(0.3, 0.95) * np.exp(-((xx - pts[k, 0]) ** 2 + (yy - pts[k, 1]) ** 2) / 3)
                scores[b, :, :, k] = np.maximum(scores[b, :, :, k], g)
            for e, (s, t) in enumerate(graph):
                if np.isnan(pts[s, 0]) or np.isnan(pts[t, 0]):
                    continue
                v = pts[t] - pts[s]
                n = np.hypot(*v) + 1e-9
                for a in np.linspace(0, 1, 12):
                    x, y = (pts[s] + a * v).round().astype(int)
                    paf[b, y, x, 2 * e:2 * e + 2] = v / n
    # rounding the scores makes equal confidences (and so ties) common
    scores = np.round(scores, 3)
    return (scores.astype(np.float32), locref.astype(np.float32), paf.astype(np.float32))


VARIANTS = [
    dict(),
    dict(greedy=True),
    dict(force_fusion=True),
    dict(add_discarded=True, min_n_links=3),
    dict(min_n_links=1, max_overlap=1.0),
    dict(pcutoff=0.5, min_affinity=0.3, max_overlap=0.5),
]


@pytest.mark.parametrize("variant", range(len(VARIANTS)))
def test_numba_equals_reference_on_random_maps(variant):
    rng = np.random.default_rng(100 + variant)
    K = 5
    graph = ((0, 1), (1, 2), (3, 2), (2, 4), (4, 0)) if variant % 2 else ((0, 1), (1, 2), (2, 3), (3, 4))
    p = AssemblyParams(num_animals=3, graph=graph, stride=8.0, **VARIANTS[variant])
    scores, locref, paf = _synthetic_batch(rng, 40, 20, 26, K, graph, (1, 5), 0.25)
    dec = MultiAnimalDecoder(p, _layout(p, K), 40, max_peaks=16, max_candidates=8)
    out = np.empty((40, dec.layout.n_flat, 3))
    n, aff = dec.decode(scores, locref, paf, out)
    ref, rn, raff = R.decode_reference(scores, locref, paf, p)
    np.testing.assert_array_equal(n, rn)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(aff, raff)
    assert n.sum() > 0


def test_limb_affinity_rounds_in_float32():
    """torch rounds float32(aff * 1000): this value gives 0.006 there, 0.005 if the product were float64."""
    v = np.float32(0.005500000435858965)
    paf = np.zeros((1, 2, 3, 2), np.float32)
    paf[0, 0, :, 0] = v
    t = linspace_f32(2)
    ref, _ = R.limb_affinity(paf[0], 0, 0, 0, 0, 1, t, 3)
    assert ref == np.float32(0.006)
    assert limb_affinity(paf, 0, 0, 0, 0, 0, 1, t, 1000.0) == ref
