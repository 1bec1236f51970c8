"""The synthetic source with several animals: identities, crossings and occlusion ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from rtpose.drivers.sources import SyntheticSource, open_source
from rtpose.drivers.sources.synthetic import BODY_SPOT_GREY, HEAD_BGR, TAIL_BGR
from rtpose.errors import ConfigError, SourceError

COLOURS = (HEAD_BGR, (BODY_SPOT_GREY,) * 3, TAIL_BGR)


def _frames_with_occlusion(src: SyntheticSource, n: int, margin_px: float) -> np.ndarray:
    vis = src.visible_many(np.arange(n), margin_px)
    return np.flatnonzero(~vis.all(axis=(1, 2)))


def test_single_animal_is_unchanged():
    one, plain = SyntheticSource(320, 240, seed=4, animals=1), SyntheticSource(320, 240, seed=4)
    assert one.name == plain.name and one.n_animals == 1
    a, b = np.empty((240, 320, 3), np.uint8), np.empty((240, 320, 3), np.uint8)
    for i in (0, 33):
        one.render(i, a)
        plain.render(i, b)
        np.testing.assert_array_equal(a, b)
        assert one.truth(i).shape == (3, 2)
        np.testing.assert_array_equal(one.animal_truth(i)[0], plain.truth(i))
    assert one.visible(5).shape == (1, 3) and one.visible(5).all()


def test_animals_have_their_own_paths_and_animal_0_is_the_single_mouse():
    src = SyntheticSource(640, 480, seed=3, animals=3)
    assert src.name == "synthetic:640x480@30,seed=3,animals=3"
    tr = src.truth_many(np.arange(300))
    assert tr.shape == (300, 3, 3, 2)
    np.testing.assert_array_equal(tr[:, 0], SyntheticSource(640, 480, seed=3).truth_many(np.arange(300)))
    np.testing.assert_array_equal(src.truth(17), tr[17])
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(tr[:, i] - tr[:, j]).max() > 50  # different animals
    again = SyntheticSource(640, 480, seed=3, animals=3).truth_many(np.arange(300))
    np.testing.assert_array_equal(tr, again)  # seeded
    assert not np.array_equal(SyntheticSource(640, 480, seed=4, animals=3).truth_many(np.arange(300)), tr)


@pytest.mark.parametrize("animals", [2, 4])
def test_neighbours_cross_with_overlapping_bodies_and_stay_in_frame(animals):
    for seed in range(3):
        src = SyntheticSource(640, 480, seed=seed, animals=animals)
        g = src.path.geometry
        tr = src.truth_many(np.arange(30 * 30))  # 30 s
        body = tr[:, :, 1]
        assert (body - g.semi_major >= 0).all() and (body[..., 0] + g.semi_major <= 639).all()
        assert (body[..., 1] + g.semi_major <= 479).all()
        for i in range(animals - 1):
            gap = np.linalg.norm(body[:, i] - body[:, i + 1], axis=-1)
            close = gap < g.semi_minor  # bodies overlap more than half their width
            onsets = np.count_nonzero(np.diff(close.astype(int)) == 1)
            assert onsets >= 2, (seed, i)  # at least one crossing per 12.6 s, by construction
        vis = src.visible_many(np.arange(30 * 30))
        assert 0.005 < 1 - vis.mean() < 0.3
        assert vis[:, -1].all()  # the last animal is drawn on top of everything


def test_without_crossings_paths_are_independent():
    a = SyntheticSource(640, 480, seed=2, animals=3, crossings=False)
    b = SyntheticSource(640, 480, seed=2, animals=3)
    assert a.name.endswith("animals=3,crossings=0")
    ta, tb = a.truth_many(np.arange(100)), b.truth_many(np.arange(100))
    np.testing.assert_array_equal(ta[:, 0], tb[:, 0])
    assert not np.array_equal(ta[:, 1], tb[:, 1])


def test_visibility_is_what_is_drawn():
    """Clearly visible keypoints show their own colour; clearly hidden ones show the animal on top."""
    src = SyntheticSource(640, 480, seed=1, animals=3)
    buf = np.empty((480, 640, 3), np.uint8)
    without = np.empty_like(buf)
    frames = _frames_with_occlusion(src, 900, margin_px=-1.5)
    assert frames.size >= 10
    n_hidden = n_visible = 0
    for f in frames[:: max(1, frames.size // 12)]:
        src.render(int(f), buf)
        truth = src.animal_truth(int(f))
        clearly_visible = src.visible(int(f), margin_px=1.5)
        clearly_hidden = ~src.visible(int(f), margin_px=-1.5)
        for a in range(3):
            for k in range(3):
                col, row = np.round(truth[a, k]).astype(int)
                if clearly_visible[a, k]:
                    assert tuple(buf[row, col]) == COLOURS[k]
                    n_visible += 1
                elif clearly_hidden[a, k]:
                    # the same frame without animal a: identical where it is hidden
                    paths = src.paths
                    src.paths = [p for i, p in enumerate(paths) if i != a]
                    try:
                        src.render(int(f), without)
                    finally:
                        src.paths = paths
                    np.testing.assert_array_equal(buf[row - 1:row + 2, col - 1:col + 2],
                                                  without[row - 1:row + 2, col - 1:col + 2])
                    n_hidden += 1
    assert n_hidden >= 5 and n_visible >= 20


def test_synthetic_animal_specs():
    src = open_source("synthetic:640x480,animals=3")
    assert isinstance(src, SyntheticSource) and src.n_animals == 3 and src.crossings
    src = open_source("synthetic:320x240@60,seed=2,animals=2,crossings=0,frames=5")
    assert (src.n_animals, src.crossings, src.seed, src.n_frames) == (2, False, 2, 5)
    with src:
        buf = np.empty((240, 320, 3), np.uint8)
        assert src.read_into(buf)
    for bad in ("synthetic:640x480,animals=0", "synthetic:640x480,animals=x", "synthetic:640x480,crossings=2"):
        with pytest.raises(ConfigError):
            open_source(bad)
    with pytest.raises(SourceError, match="animals"):
        SyntheticSource(animals=0)
