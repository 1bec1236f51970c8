"""DeepLabCut 3's identity head (rtpose/multianimal/identity.py): the resize against PyTorch, Numba against
the NumPy reference bit for bit, and both against DeepLabCut's own identity assignment on the two-mouse
fixture (tests/data/dlc3_ma/: ``identity_resize.reference.npz``, ``resnet_50_identity.reference.npz``,
made by build_fixtures.py there with PyTorch and DeepLabCut 3.0.2)."""

from __future__ import annotations

import numpy as np
import pytest

import dlc3_ma_models as M
from rtpose.errors import ModelError
from rtpose.metadata import ModelMetadata
from rtpose.multianimal.identity import (IdentityAssigner, aa_weights, identity_order_reference,
                                         resize_aa_reference)
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.params import AssemblyParams

RESIZE = M.DATA / "identity_resize.reference.npz"
IDENTITY = M.DATA / f"{M.IDENTITY_NET}.reference.npz"
#: rtpose's sigmoid uses a correctly rounded exp, PyTorch's vectorised one (SLEEF) is within 1 ulp.
SIGMOID_TOL = 2e-7


def _identity_reference():
    if not IDENTITY.is_file():
        pytest.skip(f"{IDENTITY} missing: run tests/data/dlc3_ma/build_fixtures.py --identity EXPORT")
    return dict(np.load(IDENTITY))


def test_resize_is_pytorchs_antialiased_bilinear_bit_for_bit():
    z = np.load(RESIZE)
    cases = sorted(int(k[2:]) for k in z.files if k.startswith("in"))
    assert len(cases) == 4
    for n in cases:
        x, stride, shape = z[f"in{n}"], float(z[f"stride{n}"]), tuple(z[f"shape{n}"])
        assert shape[:2] == (int(x.shape[0] * stride), int(x.shape[1] * stride))
        full = resize_aa_reference(x, *shape[:2])
        sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-full.astype(np.float64)).astype(np.float32))
        if f"idx{n}" in z.files:
            r, c, ch = z[f"idx{n}"].T
            full, sig = full[r, c, ch], sig[r, c, ch]
        np.testing.assert_array_equal(full, z[f"out{n}"], err_msg=f"case {n}")
        np.testing.assert_allclose(sig, z[f"sig{n}"], rtol=0, atol=SIGMOID_TOL, err_msg=f"case {n}")


def test_weights_are_a_normalised_triangle_with_clamped_edges():
    start, count, w = aa_weights(10, 80)
    assert start[0] == 0 and count[0] == 1 and w[0, 0] == 1.0  # the first output sits before input 0's centre
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-6)
    assert start[-1] + count[-1] == 10
    s2, c2, w2 = aa_weights(80, 10)  # shrinking: the triangle widens (not used by DeepLabCut's upsampling)
    assert c2.max() >= 8 and np.allclose(w2.sum(axis=1), 1.0, atol=1e-6)


def _random_frame(rng, a, k, h, w, stride):
    maps = (rng.standard_normal((h, w, a)) * 3).astype(np.float32)
    n_found = int(rng.integers(0, a + 1))
    animals = np.full((a, k, 3), np.nan)
    for i in range(n_found):
        animals[i, :, 0] = rng.uniform(-3, w * stride + 3, k)
        animals[i, :, 1] = rng.uniform(-3, h * stride + 3, k)
        animals[i, :, 2] = rng.uniform(0, 1, k)
        animals[i, rng.uniform(size=k) < 0.2] = np.nan  # a missing part
    return maps, animals, n_found


def test_numba_path_is_the_reference_bit_for_bit():
    rng = np.random.default_rng(3)
    for a, k, stride in ((2, 3, 8.0), (3, 4, 8.0), (4, 2, 4.0)):
        assigner = IdentityAssigner(stride, True, a, k)
        for _ in range(40):
            h, w = int(rng.integers(3, 12)), int(rng.integers(3, 12))
            maps, animals, n_found = _random_frame(rng, a, k, h, w, stride)
            order, scores = identity_order_reference(maps, animals, n_found, stride)
            mine = animals.copy()
            got = assigner.assign(maps, mine, n_found)
            np.testing.assert_array_equal(got, order)
            np.testing.assert_array_equal(assigner.scores, scores)
            for j in range(a):  # identity j holds the animal assigned to it; DeepLabCut's padding stays empty
                want = animals[order[j]] if order[j] < n_found else np.full((k, 3), np.nan)
                np.testing.assert_array_equal(mine[j], want)


def _dlc_to_rtpose(poses):
    """DeepLabCut's (A, K, 5) poses (-1 rows = no animal) -> rtpose's (A, K, 3) animals and their number."""
    animals = poses[..., :3].astype(np.float64).copy()
    empty = np.all(poses[..., :3] == -1, axis=-1).all(axis=-1)
    assert not empty[: (~empty).sum()].any(), "DeepLabCut's animals come first"
    animals[empty] = np.nan
    return animals, int((~empty).sum())


def test_identity_order_is_deeplabcuts_on_its_own_predictions():
    """DeepLabCut's PAF predictor's animals + its identity head's raw maps -> rtpose's identity order and
    scores = what DeepLabCut's PredictKeypointIdentities + AssignIndividualIdentities produced."""
    ref = _identity_reference()
    stride = 8.0
    assigner = IdentityAssigner(stride, True, len(M.INDIVIDUALS), len(M.BODYPARTS))
    for i in range(len(ref["poses"])):
        animals, n_found = _dlc_to_rtpose(ref["poses"][i])
        maps = ref["identity_maps"][i]
        order, scores = identity_order_reference(maps, animals, n_found, stride)
        np.testing.assert_allclose(scores[order], ref["identity_scores"][i], rtol=0, atol=SIGMOID_TOL,
                                   err_msg=f"frame {i}")
        want = ref["identity_bodyparts"][i][..., :3].astype(np.float64)
        want[np.all(want == -1, axis=-1)] = np.nan
        got = animals.copy()
        assigner.assign(maps, got, n_found)
        np.testing.assert_array_equal(assigner.order, order)
        np.testing.assert_array_equal(got, want, err_msg=f"frame {i}")


def test_identity_head_tells_the_two_mice_apart_on_the_synthetic_frames():
    """The fixture's identity head was trained briefly on frames where mouse2 is red. On the synthetic
    reference frames DeepLabCut finds 17 keypoints near a true keypoint (< 10 px); 15 of them score above
    0.5 for some individual, each for the right mouse (the other two: 0.34 and 0.013 at most); where the two mice are apart (frames 211 and 1009), identity slot j holds
    mouse j. (Frame 7: DeepLabCut's assembly finds one mouse; frame 433: the mice touch and the
    assembly mixes their parts.)"""
    ref = _identity_reference()
    checked = 0
    for i, index in enumerate(M.REFERENCE_SYNTHETIC):
        truth = M.synthetic_frame(index, tint=True)[1]  # (A, K, 2)
        got, scores = ref["identity_bodyparts"][i], ref["identity_scores"][i]
        for a, k in zip(*np.nonzero(got[..., 2] > 0)):
            d = np.hypot(*(truth - got[a, k, :2]).reshape(-1, 2).T).reshape(truth.shape[:2])
            mouse = np.unravel_index(d.argmin(), d.shape)[0]
            if d.min() < 10 and scores[a, k].max() > 0.5:
                assert scores[a, k].argmax() == mouse, (index, a, k, scores[a, k])
                checked += 1
        if index in (211, 1009):
            for slot in range(len(M.INDIVIDUALS)):
                assert np.hypot(*(got[slot, 1, :2] - truth[slot, 1])) < 10, (index, slot, got[:, 1, :2], truth[:, 1])
    assert checked == 15


def test_animal_step_gives_identity_slots_and_track_ids():
    """The pipeline's AnimalStep on DeepLabCut's stored maps of the identity fixture: the decoder finds
    DeepLabCut's animals, the identity head orders them as DeepLabCut does, and track ids are the identities."""
    from rtpose.multianimal.live import AnimalStep
    from rtpose.results import PoseBatch

    ref = _identity_reference()
    layout = AnimalLayout(M.INDIVIDUALS, M.BODYPARTS, ())
    params = AssemblyParams(num_animals=2, graph=((0, 1), (0, 2), (1, 2)), stride=4.0, identity_stride=8.0)
    step = AnimalStep(params, layout, 1, 1, clock=lambda: 0)
    batch = PoseBatch(1, layout.n_flat, layout.n_animals)
    batch.n = 1
    forgotten = []
    for j, i in enumerate(ref["maps_frames"]):
        maps = [np.ascontiguousarray(ref[name][j: j + 1]) for name in ("scoremap", "locref", "paf")]
        maps.append(np.ascontiguousarray(ref["identity_maps"][i: i + 1]))
        batch.t_frame_ns[0] = j
        step.decode(maps, batch, 1)
        step.track(batch, 1, lambda s, first, stop: forgotten.append((s, first, stop)))
        want = ref["identity_bodyparts"][i][..., :3].astype(np.float64)
        present = ~np.all(want == -1, axis=(-1, -2))
        got = layout.animals(batch.pose[0])
        assert np.array_equal(np.isfinite(got[..., 2]).any(axis=-1), present)
        dxy = np.hypot(*(got[present][..., :2] - want[present][..., :2]).T)
        assert dxy.mean() < 0.05 if dxy.size else True, (i, dxy)
        np.testing.assert_array_equal(batch.track_id[0], np.where(present, np.arange(2), -1))
    assert step.summary()["tracks_started"] == 0  # no motion tracker on this path


def test_identity_metadata_round_trips_and_must_be_complete():
    layout = AnimalLayout(M.INDIVIDUALS, M.BODYPARTS, ())
    asm = AssemblyParams(num_animals=2, graph=((0, 1), (0, 2), (1, 2)), stride=4.0, identity_stride=8.0)
    meta = ModelMetadata(bodyparts=M.BODYPARTS, stride=4.0, layout=layout, paf_output="paf", assembly=asm,
                         identity_output="identity")
    assert asm.with_identity and ModelMetadata.from_props(meta.to_props()) == meta
    with pytest.raises(ModelError, match="identity head needs both"):
        ModelMetadata(bodyparts=M.BODYPARTS, stride=4.0, layout=layout, paf_output="paf", assembly=asm)
    plain = AssemblyParams(num_animals=2, graph=((0, 1),), stride=4.0)
    assert not plain.with_identity and "identity_stride" in plain.to_json()
    with pytest.raises(ModelError, match="identity head needs both"):
        ModelMetadata(bodyparts=M.BODYPARTS, stride=4.0, layout=layout, paf_output="paf", assembly=plain,
                      identity_output="identity")
