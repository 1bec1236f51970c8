"""Identity tracking of several animals: assignment, the tracker on synthetic ground truth, the swap metric."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rtpose.drivers.sources import SyntheticSource
from rtpose.errors import ConfigError
from rtpose.multianimal.assignment import FORBIDDEN, assign
from rtpose.multianimal.metrics import clear_mot
from rtpose.multianimal.simulate import simulate_detections, source_of_slots
from rtpose.multianimal.tracking import IdentityTracker, TrackerInputError

FPS = 30.0


def _t(f: int) -> int:
    return int(round(f * 1e9 / FPS))


# -- assignment ------------------------------------------------------------------------------


def test_assignment_is_optimal_against_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(1, 6))
        m = int(rng.integers(n, 7))
        cost = rng.integers(0, 9, (n, m)).astype(float) if trial % 2 else rng.random((n, m)) * 100
        if trial % 5 == 0:
            cost[rng.random((n, m)) < 0.3] = FORBIDDEN
        r2c, total = assign(cost)
        best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        assert len(set(r2c.tolist())) == n
        assert total == pytest.approx(best) and cost[np.arange(n), r2c].sum() == pytest.approx(best)
        c2r, total_t = assign(cost.T)  # more rows than columns: unassigned rows get -1
        assert total_t == pytest.approx(best) and (c2r >= 0).sum() == n


# -- tracker ---------------------------------------------------------------------------------


def _track(det: np.ndarray, n_slots: int, **kw):
    F, _, K, _ = det.shape
    tk = IdentityTracker(n_slots, K, **kw)
    out = np.empty((F, n_slots, K, 3))
    ids = np.empty((F, n_slots), np.int64)
    for f in range(F):
        tk.update(_t(f), det[f], out[f], ids[f])
    return tk, out, ids


def _slot_ids(ids: np.ndarray) -> np.ndarray:
    return np.where(ids >= 0, np.arange(ids.shape[1])[None, :], -1)


def test_shuffled_detections_land_in_stable_slots():
    # two animals moving in straight lines, detections in a random order each frame
    F = 60
    t = np.arange(F)[:, None, None]
    base = np.array([[[100.0, 100.0], [110.0, 100.0]], [[300.0, 200.0], [310.0, 200.0]]])
    truth = base[None] + np.stack([3.0 * t, 1.0 * t], -1)[:, :, None, 0] * np.array([1, -1])[None, :, None, None]
    det = simulate_detections(truth, seed=1, jitter_px=1.0)
    tk, out, ids = _track(det, 2)
    assert (ids == ids[0]).all() and sorted(ids[0].tolist()) == [0, 1]
    slot_of_animal = [int(np.argmin(np.linalg.norm(out[0, :, 0, :2] - truth[0, a, 0], axis=-1))) for a in range(2)]
    assert sorted(slot_of_animal) == [0, 1]
    for a in range(2):
        np.testing.assert_allclose(out[:, slot_of_animal[a], :, :2], truth[:, a], atol=5.0)
    assert tk.tracks_started == 2 and tk.dropped == 0


def test_empty_slots_are_nan_with_id_minus_one_and_new_animals_take_free_slots():
    tk = IdentityTracker(3, 2)
    out = np.zeros((3, 2, 3))
    ids = np.zeros(3, np.int64)
    one = np.array([[[10.0, 10.0, 0.9], [20.0, 10.0, 0.8]]])
    assert tk.update(0, one, out, ids) == 1
    assert ids.tolist() == [0, -1, -1] and np.isnan(out[1:]).all()
    np.testing.assert_array_equal(out[0], one[0])
    two = np.concatenate([np.array([[[400.0, 300.0, 0.9], [np.nan, np.nan, np.nan]]]), one, np.full((1, 2, 3), np.nan)])
    assert tk.update(_t(1), two, out, ids) == 2
    assert ids.tolist() == [0, 1, -1]
    np.testing.assert_array_equal(out[1], two[0])
    # more animals than slots: the extra detection is dropped and counted
    four = np.array([[[10.0, 10.0, 0.9]] * 2, [[400.0, 300.0, 0.9]] * 2, [[200.0, 50.0, 0.9]] * 2, [[600.0, 50.0, 0.9]] * 2])
    tk.update(_t(2), four, out, ids)
    assert ids.tolist() == [0, 1, 2] and tk.dropped == 1


def test_tracker_writes_into_the_flat_multi_animal_pose():
    from rtpose.multianimal.layout import AnimalLayout

    layout = AnimalLayout(("m1", "m2"), ("snout", "tail"), ("lever",))
    flat = np.full((layout.n_flat, 3), 7.0)  # (A*K + U, 3), DeepLabCut's .h5 column order
    tk = IdentityTracker(layout.n_animals, layout.n_bodyparts)
    ids = np.empty(2, np.int64)
    det = np.array([[[10.0, 20.0, 0.9], [30.0, 20.0, 0.8]]])
    tk.update(0, det, layout.animals(flat), ids)
    np.testing.assert_array_equal(flat[:2], det[0])  # m1.snout, m1.tail
    assert np.isnan(flat[2:4]).all() and (flat[4] == 7.0).all()  # m2 empty, the unique part untouched


def test_lost_animal_keeps_its_slot_then_dies_and_a_new_track_takes_a_slot():
    tk = IdentityTracker(2, 1, max_lost_s=0.5)
    out = np.empty((2, 1, 3))
    ids = np.empty(2, np.int64)
    a = lambda x: np.array([[[x, 100.0, 1.0]]])  # noqa: E731
    b = lambda x: np.array([[[x, 400.0, 1.0]]])  # noqa: E731
    for f in range(10):
        tk.update(_t(f), np.concatenate([a(100 + 2 * f), b(500 - 2 * f)]), out, ids)
    slot_b = int(np.flatnonzero(out[:, 0, 1] == 400.0)[0])
    for f in range(10, 20):  # b unseen for 10 frames (0.33 s): slot kept, NaN
        tk.update(_t(f), a(100 + 2 * f), out, ids)
        assert ids[slot_b] >= 0 and np.isnan(out[slot_b]).all()
    id_b = int(ids[slot_b])
    tk.update(_t(20), np.concatenate([b(500 - 40), a(140)]), out, ids)
    assert ids[slot_b] == id_b and out[slot_b, 0, 0] == 460  # back in its slot, same track
    for f in range(21, 40):  # unseen for 0.63 s > max_lost_s: the track ends
        tk.update(_t(f), a(100 + 2 * f), out, ids)
    assert ids[slot_b] == -1
    tk.update(_t(40), np.concatenate([b(420), a(180)]), out, ids)
    assert ids[slot_b] == 2 and tk.tracks_started == 3  # a new track, a new id


def test_a_detection_showing_more_of_the_animal_wins_the_track():
    """Two detections near a track: all parts 6 px off, or one part 1 px off (an animal half hidden)."""
    nan = np.nan
    still = np.array([[[100.0, 100.0, 1.0], [120.0, 100.0, 1.0], [140.0, 100.0, 1.0]]])
    full = still + np.array([0.0, 6.0, 0.0])
    partial = np.array([[[101.0, 100.0, 1.0], [nan, nan, nan], [nan, nan, nan]]])
    for missing_part_px, continues in ((20.0, "full"), (0.0, "partial")):
        tk = IdentityTracker(2, 3, missing_part_px=missing_part_px)
        out, ids = np.empty((2, 3, 3)), np.empty(2, np.int64)
        for f in range(5):
            tk.update(_t(f), still, out, ids)
        tk.update(_t(5), np.concatenate([partial, full]), out, ids)
        assert ids.tolist() == [0, 1]
        np.testing.assert_array_equal(out[0], (full if continues == "full" else partial)[0])


def _scene(n_animals: int, seed: int, frames: int, absences):
    src = SyntheticSource(640, 480, seed=seed, animals=n_animals)
    idx = np.arange(frames)
    truth, visible = src.animal_truth_many(idx), src.visible_many(idx)
    absent = np.zeros((frames, n_animals), bool)
    for animal, start, stop in absences:
        absent[start:stop, animal] = True
    det, source = simulate_detections(truth, visible, seed=seed, jitter_px=3.0, p_missing=0.05, p_outlier=0.02,
                                      outlier_px=25.0, absent=absent, return_source=True)
    return truth, visible, absent, det, source


@pytest.mark.parametrize("n_animals,seed", [(2, 0), (2, 1), (3, 1), (3, 2)])
def test_tracker_keeps_identities_through_crossings_occlusions_and_absences(n_animals, seed):
    frames = 30 * 100
    # one animal leaves for 0.5 s (kept), another for 3 s (its track ends, it comes back as a new one)
    truth, visible, absent, det, source = _scene(n_animals, seed, frames, [(0, 600, 615), (n_animals - 1, 1200, 1290)])
    body = truth[:, :, 1]
    overlap = np.linalg.norm(body[:, 0] - body[:, 1], axis=-1) < 18  # bodies overlapping by half their width
    assert np.count_nonzero(np.diff(overlap.astype(int)) == 1) >= 10  # the scene has crossings ...
    assert (~visible.all(-1)).sum() > 100 and (~visible.any(-1)).sum() > 10  # ... occlusions, whole animals hidden
    tk, out, ids = _track(det, n_animals)
    present = visible.any(-1) & ~absent
    # which animal each slot really holds: identities scored exactly, not by distance
    holds = source_of_slots(det, source, out)
    by_slot = clear_mot(truth, out, _slot_ids(ids), 15.0, gt_present=present, hyp_truth=holds)
    by_track = clear_mot(truth, out, ids, 15.0, gt_present=present, hyp_truth=holds)
    if n_animals == 2:
        assert by_slot.id_switches == 0, by_slot.switch_frames
        assert by_track.switch_frames in ((1290,), (1291,))  # only the 3 s absence
        assert tk.tracks_started == n_animals + 1
    else:
        # three animals, two travelling one on top of the other, can swap: 0.78 switches per 1000
        # frames over 10 seeds (docs/multianimal-tracking.md), 0-10 per 3000 frames on seeds 0-4 of
        # this scene; seeds 1 and 2 have 0 and 2 (one swap): a regression check, not a typical case
        assert by_slot.id_switches <= 2, by_slot.switch_frames
        # other track-id changes are new tracks: after the 3 s absence, or an animal hidden under
        # another for longer than max_lost_s
        assert by_track.id_switches <= by_slot.id_switches + tk.tracks_started - n_animals
    assert by_slot.misses < 0.02 * by_slot.objects and by_slot.false_positives < 0.005 * by_slot.objects
    assert by_slot.motp_px < 6.0


def test_tracker_rejects_bad_inputs():
    tk = IdentityTracker(2, 3)
    out, ids = np.empty((2, 3, 3)), np.empty(2, np.int64)
    good = np.full((2, 3, 3), np.nan)
    tk.update(10, good, out, ids)
    with pytest.raises(TrackerInputError, match="earlier"):
        tk.update(5, good, out, ids)
    for bad in (np.zeros((2, 2, 3)), np.zeros((2, 3, 3), np.float32), [[0.0]], np.zeros((2, 3, 4))[:, :, :3]):
        with pytest.raises(TrackerInputError, match="detections"):
            tk.update(20, bad, out, ids)
    with pytest.raises(TrackerInputError, match="out_animals"):
        tk.update(20, good, np.empty((3, 3, 3)), ids)
    with pytest.raises(TrackerInputError, match="out_track_ids"):
        tk.update(20, good, out, np.empty(2, np.int32))
    with pytest.raises(TrackerInputError, match="integer"):
        tk.update(20.0, good, out, ids)
    for kw in ({"gate_px": 0}, {"max_lost_s": -1}, {"min_keypoints": 4}, {"measurement_noise_px": 0}, {"missing_part_px": -1}):
        with pytest.raises(ConfigError):
            IdentityTracker(2, 3, **kw)
    with pytest.raises(ConfigError):
        IdentityTracker(0, 3)
    tk.reset()
    tk.update(0, good, out, ids)  # time may start again after reset()
    assert tk.t_ns == 0


# -- the swap metric -------------------------------------------------------------------------


def _two_animals(frames=30):
    t = np.arange(frames, dtype=float)
    a = np.stack([100 + 2 * t, 100 + 0 * t], -1)
    b = np.stack([400 - 2 * t, 300 + 0 * t], -1)
    truth = np.stack([a, b], 1)[:, :, None, :].repeat(2, axis=2)  # (F, 2 animals, 2 parts, 2)
    hyp = np.concatenate([truth, np.ones((*truth.shape[:-1], 1))], -1).copy()
    ids = np.tile(np.array([7, 9]), (frames, 1))
    return truth, hyp, ids


def test_metric_counts_a_constructed_swap_as_two_switches():
    truth, hyp, ids = _two_animals()
    perfect = clear_mot(truth, hyp, ids, 20.0)
    assert (perfect.id_switches, perfect.misses, perfect.false_positives, perfect.matches) == (0, 0, 0, 60)
    assert perfect.mota == 1.0 and perfect.motp_px == 0.0
    swapped = hyp.copy()
    swapped[10:] = hyp[10:, ::-1]  # from frame 10 the tracker gives each animal the other's identity
    r = clear_mot(truth, swapped, ids, 20.0)
    assert r.id_switches == 2 and r.switch_frames == (10, 10)
    assert r.id_switches_per_1000_frames == pytest.approx(2000 / 30)
    back = swapped.copy()
    back[20:] = hyp[20:]  # and swaps back at frame 20
    assert clear_mot(truth, back, ids, 20.0).switch_frames == (10, 10, 20, 20)
    # the same swap scored by slot index instead of track id: identical
    assert clear_mot(truth, swapped, np.tile([0, 1], (30, 1)), 20.0).id_switches == 2


def test_metric_new_id_after_a_gap_is_one_switch_and_misses_and_false_positives_count():
    truth, hyp, ids = _two_animals()
    hyp[10:15, 1] = np.nan  # animal b not reported for 5 frames ...
    ids = ids.copy()
    ids[15:, 1] = 11  # ... then comes back with a new id
    r = clear_mot(truth, hyp, ids, 20.0)
    assert (r.id_switches, r.misses, r.switch_frames) == (1, 5, (15,))
    far = hyp.copy()
    far[3, 0, :, :2] += 50.0  # a far-off hypothesis: one miss and one false positive, no switch
    r = clear_mot(truth, far, ids, 20.0)
    assert (r.misses, r.false_positives, r.id_switches) == (6, 1, 1)
    absent = np.ones((30, 2), bool)
    absent[:, 1] = False  # animal b not in the ground truth at all: its hypotheses are false positives
    r = clear_mot(truth, hyp, ids, 20.0, gt_present=absent)
    assert (r.objects, r.false_positives, r.id_switches) == (30, 25, 0)


def test_metric_keeps_a_valid_correspondence_even_if_another_hypothesis_is_closer():
    truth, hyp, ids = _two_animals(5)
    hyp = np.concatenate([hyp, hyp[:, :1]], 1)  # a third hypothesis ...
    ids = np.concatenate([ids, np.full((5, 1), 5)], 1)
    hyp[:, 0, :, 0] += 8.0  # ... exactly on animal a, while a's own track is 8 px off (within 20)
    hyp[0, 2] = np.nan
    r = clear_mot(truth, hyp, ids, 20.0)
    assert r.id_switches == 0 and r.false_positives == 4


def test_metric_with_known_identities_sees_swaps_distance_cannot():
    truth, hyp, ids = _two_animals()
    truth[:, 1] = truth[:, 0] + 4.0  # two animals 4-6 px apart: closer than any sensible threshold
    hyp[..., :2] = truth
    made_from = np.tile([0, 1], (30, 1))
    swapped = hyp.copy()
    swapped[10:] = hyp[10:, ::-1]
    made_from[10:] = made_from[10:, ::-1]
    assert clear_mot(truth, swapped, ids, 20.0).id_switches == 0  # by distance the swap is invisible
    exact = clear_mot(truth, swapped, ids, 20.0, hyp_truth=made_from)
    assert exact.switch_frames == (10, 10) and exact.motp_px == 0.0  # each slot sits exactly on its animal


def test_simulated_detections_hide_what_is_hidden_and_shuffle():
    truth = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2) * 10
    visible = np.ones((2, 3, 2), bool)
    visible[0, 1, 0] = False
    absent = np.zeros((2, 3), bool)
    absent[1, 2] = True
    det = simulate_detections(truth, visible, absent=absent, max_detections=4, seed=3)
    assert det.shape == (2, 4, 2, 3)
    assert np.isfinite(det[..., 0]).any(-1).sum(-1).tolist() == [3, 2]
    rows0 = {tuple(r) for r in det[0, :, :, :2].reshape(4, 4).tolist() if np.isfinite(r).any()}
    assert (float("nan"),) not in rows0
    det2, source = simulate_detections(truth, visible, absent=absent, max_detections=4, seed=3, return_source=True)
    np.testing.assert_array_equal(det2, det)
    for f in range(2):
        for d in range(4):
            if source[f, d] >= 0:
                assert np.nanmax(np.abs(det[f, d, :, :2] - truth[f, source[f, d]])) == 0.0
            else:
                assert np.isnan(det[f, d]).all()
    slots = det[:, [2, 0]]  # a "tracker" that put rows 2 and 0 into its two slots
    np.testing.assert_array_equal(source_of_slots(det, source, slots), source[:, [2, 0]])
    ordered = simulate_detections(truth, visible, absent=absent, max_detections=4, seed=3, shuffle=False)
    np.testing.assert_array_equal(ordered[0, 0, :, :2], truth[0, 0])
    assert np.isnan(ordered[0, 1, 0]).all() and np.isfinite(ordered[0, 1, 1]).all()
    assert (ordered[..., 2][np.isfinite(ordered[..., 2])] >= 0.6).all()
