"""rtpose.decode: the Numba decoder equals the NumPy reference bit for bit, and both equal DeepLabCut."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rtpose.decode import BLOCK_CELLS, Decoder, DecodeInputError, _decode_kernel, decode_reference, warmup
from rtpose.errors import ModelError

STRIDE = 8.0
LOCREF_STDEV = 7.2801


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    warmup()


def _decode(scmap, locref, stride=STRIDE, stdev=LOCREF_STDEV, n=None):
    B, _, _, K = scmap.shape
    out = np.full((B, K, 3), -12345.0)
    Decoder(stride, stdev, K, B).decode(scmap, locref, out, n=n)
    return out


def _dlc_literal(scmap_b, locref_b, stride, locref_stdev):
    """DeepLabCut's extract_cnn_output + argmax_pose_predict for one image, operation by operation.

    Transcribed from deeplabcut/pose_estimation_tensorflow/core/predict.py (same in
    DeepLabCut-Live's pose.py): squeeze, reshape offsets to (h, w, K, 2), scale them in
    place, then per joint: first argmax, offset reversed to (dy, dx), float64 position.
    """
    scmap = np.squeeze(scmap_b[None])
    locref = None
    if locref_b is not None:
        locref = np.squeeze(locref_b[None]).copy()
        shape = locref.shape
        locref = np.reshape(locref, (shape[0], shape[1], -1, 2))
        locref *= locref_stdev
    if len(scmap.shape) == 2:
        scmap = np.expand_dims(scmap, axis=2)
    pose = []
    for joint_idx in range(scmap.shape[2]):
        maxloc = np.unravel_index(np.argmax(scmap[:, :, joint_idx]), scmap[:, :, joint_idx].shape)
        offset = np.array(locref[maxloc][joint_idx])[::-1] if locref is not None else 0
        pos_f8 = np.array(maxloc).astype("float") * stride + 0.5 * stride + offset
        pose.append(np.hstack((pos_f8[::-1], [scmap[maxloc][joint_idx]])))
    return np.array(pose)


def _random(rng, B, h, w, K):
    scmap = rng.random((B, h, w, K), dtype=np.float32)
    locref = rng.standard_normal((B, h, w, 2 * K)).astype(np.float32)
    return scmap, locref


SHAPES = [(1, 60, 80, 4), (3, 60, 80, 16), (2, 120, 160, 20), (5, 7, 9, 3), (2, 1, 1, 1), (1, 16, 8, 2), (2, 3, 200, 5)]


@pytest.mark.parametrize("B,h,w,K", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_numba_equals_reference_bitwise_on_random_maps(B, h, w, K, seed):
    rng = np.random.default_rng(seed)
    scmap, locref = _random(rng, B, h, w, K)
    expected = decode_reference(scmap, locref, STRIDE, LOCREF_STDEV)
    assert np.array_equal(_decode(scmap, locref), expected)
    # the (B, h, w, K, 2) view of the same memory decodes identically
    assert np.array_equal(_decode(scmap, locref.reshape(B, h, w, K, 2)), expected)
    # without location refinement
    assert np.array_equal(_decode(scmap, None), decode_reference(scmap, None, STRIDE, LOCREF_STDEV))


# DeepLabCut's np.squeeze would also drop a map dimension of size 1: leave those shapes out.
@pytest.mark.parametrize("B,h,w,K", [s for s in SHAPES if s[1] > 1 and s[2] > 1])
def test_matches_literal_deeplabcut_loop(B, h, w, K):
    rng = np.random.default_rng(7)
    scmap, locref = _random(rng, B, h, w, K)
    for stride, stdev in [(8.0, 7.2801), (16, 7.2801), (4.0, 1.0)]:
        got = _decode(scmap, locref, stride, stdev)
        got_noref = _decode(scmap, None, stride, stdev)
        for b in range(B):
            assert np.array_equal(got[b], _dlc_literal(scmap[b], locref[b], stride, stdev))
            assert np.array_equal(got_noref[b], _dlc_literal(scmap[b], None, stride, stdev))


def test_offsets_scaled_in_float32_like_deeplabcut():
    # An offset whose float64 product differs from the float32 product: the decode must
    # carry DeepLabCut's float32 rounding, not the exact product.
    scmap = np.zeros((1, 2, 2, 1), np.float32)
    scmap[0, 1, 0, 0] = 1.0
    locref = np.zeros((1, 2, 2, 2), np.float32)
    locref[0, 1, 0] = [0.1234567, -0.7654321]
    out = _decode(scmap, locref)
    dx32 = np.float32(0.1234567) * np.float32(LOCREF_STDEV)
    dy32 = np.float32(-0.7654321) * np.float32(LOCREF_STDEV)
    assert out[0, 0, 0] == 0 * 8.0 + 4.0 + float(dx32)
    assert out[0, 0, 1] == 1 * 8.0 + 4.0 + float(dy32)
    assert out[0, 0, 0] != 4.0 + float(np.float32(0.1234567)) * LOCREF_STDEV
    assert out[0, 0, 2] == 1.0


def _dlc3_literal(heatmap_nhwc, locref_nhwc, stride, locref_std):
    """DeepLabCut 3's HeatmapPredictor (apply_sigmoid=False, clip_scores=True) in NumPy float32.

    Transcribed from deeplabcut/pose_estimation_pytorch/models/predictors/single_predictor.py
    (the same in DeepLabCut-Live 1.1.0): locref reshaped to (B, h, w, K, 2) and scaled in float32,
    first argmax of the flat (B, h*w, K) map, ``x * stride + 0.5 * stride + dx`` in float32 (an
    int64 tensor times a Python float is a float32 tensor), likelihood clipped to [0, 1].
    """
    B, h, w, K = heatmap_nhwc.shape
    top = np.argmax(heatmap_nhwc.reshape(B, h * w, K), axis=1)
    y, x = top // w, top % w
    bi, ki = np.arange(B)[:, None], np.arange(K)[None, :]
    scores = heatmap_nhwc[bi, y, x, ki]
    off = (locref_nhwc.reshape(B, h, w, K, 2) * np.float32(locref_std))[bi, y, x, ki]
    xs = x.astype(np.float32) * np.float32(stride) + np.float32(0.5 * stride) + off[..., 0]
    ys = y.astype(np.float32) * np.float32(stride) + np.float32(0.5 * stride) + off[..., 1]
    return np.stack([xs, ys, np.clip(scores, 0, 1)], axis=-1)


@pytest.mark.parametrize("seed", [0, 1])
def test_clip_scores_matches_deeplabcut3_predictor(seed):
    rng = np.random.default_rng(seed)
    B, h, w, K = 3, 30, 40, 4
    # raw heatmaps (no sigmoid): values below 0 and above 1, several cells above 1
    scmap = (rng.standard_normal((B, h, w, K)) * 0.6 + 0.3).astype(np.float32)
    scmap[0, 3, 5, 1] = scmap[0, 7, 2, 1] = 5.0  # the raw maximum decides (first of a tie), not the clipped one
    scmap[1, :, :, 2] = -0.25  # all negative: likelihood 0
    locref = rng.standard_normal((B, h, w, 2 * K)).astype(np.float32)
    out = np.full((B, K, 3), -1.0)
    Decoder(STRIDE, LOCREF_STDEV, K, B, clip_scores=True).decode(scmap, locref, out)
    assert np.array_equal(out, decode_reference(scmap, locref, STRIDE, LOCREF_STDEV, clip_scores=True))
    assert np.array_equal(out[..., :2], _decode(scmap, locref)[..., :2])  # only the likelihood changes
    assert out[0, 1, 2] == 1.0 and out[0, 1, 0] == 5 * STRIDE + 4 + float(locref[0, 3, 5, 2] * np.float32(LOCREF_STDEV))
    assert np.all(out[1, 2, 2] == 0.0)
    dlc3 = _dlc3_literal(scmap, locref, STRIDE, LOCREF_STDEV)
    # DeepLabCut 3 computes x, y in float32: rtpose's float64 value rounds to exactly it
    assert np.array_equal(out.astype(np.float32), dlc3)
    assert np.max(np.abs(out[..., :2] - dlc3[..., :2])) < 1e-5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ties_and_plateaus_first_maximum_wins(seed):
    rng = np.random.default_rng(seed)
    B, h, w, K = 3, 30, 40, 6
    # few distinct levels: many ties everywhere
    scmap = (rng.integers(0, 4, (B, h, w, K)) / 4).astype(np.float32)
    scmap[1] = 0.25  # fully constant image: cell 0 wins
    locref = rng.standard_normal((B, h, w, 2 * K)).astype(np.float32)
    out = _decode(scmap, locref)
    assert np.array_equal(out, decode_reference(scmap, locref, STRIDE, LOCREF_STDEV))
    flat = scmap.reshape(B, h * w, K)
    first = np.argmax(flat, axis=1)
    assert np.array_equal(out[..., 0], (first % w) * STRIDE + 4 + (locref.reshape(B, h * w, K, 2)[
        np.arange(B)[:, None], first, np.arange(K)[None], 0] * np.float32(LOCREF_STDEV)).astype(np.float64))
    assert np.all(out[1, :, 0] == 4.0 + (locref[1, 0, 0, 0::2] * np.float32(LOCREF_STDEV)).astype(np.float64))


def test_ties_across_blocks_lanes_and_tail():
    # The kernel reduces per lane (cell index modulo BLOCK_CELLS): place equal maxima in
    # the same lane of later blocks, in other lanes, and in the partial last block.
    h, w = 20, 33  # 660 cells: 5 full blocks of 128 + a tail of 20
    C = BLOCK_CELLS
    cases = {
        0: [3 * C + 10, 1 * C + 10, 4 * C + 10],  # same lane: earliest block wins
        1: [2 * C + 100, 2 * C + 5, 4 * C + 1],  # same block, different lanes
        2: [5 * C + 3, 5 * C + 19],  # only in the tail
        3: [5 * C + 2, 4 * C + 127],  # tail vs the last lane of a full block
        4: [0, h * w - 1],  # very first and very last cell
        5: [h * w - 1],
    }
    K = len(cases)
    scmap = np.full((1, h, w, K), 0.1, np.float32)
    for k, cells in cases.items():
        for c in cells:
            scmap[0, c // w, c % w, k] = 0.9
    out = _decode(scmap, None)
    assert np.array_equal(out, decode_reference(scmap, None, STRIDE, LOCREF_STDEV))
    for k, cells in cases.items():
        c = min(cells)
        assert out[0, k, 0] == (c % w) * STRIDE + 4 and out[0, k, 1] == (c // w) * STRIDE + 4


def test_nan_follows_numpy_argmax():
    rng = np.random.default_rng(3)
    scmap, locref = _random(rng, 2, 24, 40, 3)
    scmap[0, 5, 7, 1] = np.nan
    scmap[0, 2, 30, 1] = np.nan  # earlier NaN (row-major) wins
    scmap[1, 23, 39, 2] = np.nan  # last cell
    scmap[1, 0, 0, 0] = np.inf
    scmap[1, 0, 1, 0] = -np.inf  # +inf and -inf side by side: still exact
    out = _decode(scmap, locref)
    expected = decode_reference(scmap, locref, STRIDE, LOCREF_STDEV)
    assert np.array_equal(out, expected, equal_nan=True)
    assert np.isnan(out[0, 1, 2]) and out[0, 1, 0] == 30 * 8 + 4 + float(locref[0, 2, 30, 2] * np.float32(LOCREF_STDEV))
    for b in range(2):
        assert np.array_equal(out[b], _dlc_literal(scmap[b], locref[b], STRIDE, LOCREF_STDEV), equal_nan=True)


def test_decodes_first_n_rows_only():
    rng = np.random.default_rng(5)
    scmap, locref = _random(rng, 6, 30, 40, 4)
    dec = Decoder(STRIDE, LOCREF_STDEV, 4, 6)
    out = np.full((6, 4, 3), -1.0)
    dec.decode(scmap, locref, out, n=2)
    assert np.array_equal(out[:2], decode_reference(scmap, locref, STRIDE, LOCREF_STDEV, n=2))
    assert np.all(out[2:] == -1.0)
    dec.decode(scmap, locref, out, n=0)  # nothing to do, nothing written
    assert np.all(out[2:] == -1.0)
    # a bigger out buffer than the batch is fine
    big = np.zeros((8, 4, 3))
    dec.decode(scmap[:3], locref[:3], big)
    assert np.array_equal(big[:3], decode_reference(scmap[:3], locref[:3], STRIDE, LOCREF_STDEV))


def _labels(openfield_dir):
    with open(openfield_dir / "labeled" / "CollectedData_Pranav.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][1:] == ["snout", "snout", "leftear", "leftear", "rightear", "rightear", "tailbase", "tailbase"]
    xy = np.array([[float(v) if v else np.nan for v in r[1:]] for r in rows[3:]])
    return xy.reshape(len(xy), 4, 2)  # (frames, K, (x, y))


def _dlc_targets(labels, h, w, stride, radius, stdev):
    """DeepLabCut-style training targets: a disk of 1s of `radius` px around each label,
    offsets (label - cell centre) / locref_stdev inside it."""
    B, K, _ = labels.shape
    cy = np.arange(h) * stride + stride / 2
    cx = np.arange(w) * stride + stride / 2
    scmap = np.zeros((B, h, w, K), np.float32)
    locref = np.zeros((B, h, w, K, 2), np.float32)
    for b in range(B):
        for k in range(K):
            dx = np.broadcast_to(labels[b, k, 0] - cx[None, :], (h, w))
            dy = np.broadcast_to(labels[b, k, 1] - cy[:, None], (h, w))
            disk = dx**2 + dy**2 <= radius**2
            scmap[b, :, :, k] = disk
            locref[b, :, :, k, 0] = np.where(disk, dx / stdev, 0)
            locref[b, :, :, k, 1] = np.where(disk, dy / stdev, 0)
    return scmap, locref


def test_real_labels_recovered_from_deeplabcut_style_targets(openfield_dir):
    labels = _labels(openfield_dir)
    assert labels.shape == (100, 4, 2) and np.isfinite(labels).all()
    h, w = 480 // 8, 640 // 8
    scmap, locref = _dlc_targets(labels, h, w, STRIDE, 17.0, LOCREF_STDEV)
    assert (scmap.reshape(100, -1, 4).max(axis=1) == 1).all(), "every label has a disk on the map"
    rng = np.random.default_rng(11)
    # a network-like output: high on the disk, low elsewhere, Gaussian noise everywhere
    noisy = (0.05 + 0.9 * scmap + rng.normal(0, 0.03, scmap.shape)).astype(np.float32)
    flat = noisy.reshape(100, h * w, 4)
    unique = (flat == flat.max(axis=1, keepdims=True)).sum(axis=1) == 1
    assert unique.mean() > 0.95
    dec = Decoder(STRIDE, LOCREF_STDEV, 4, 100)
    out = np.empty((100, 4, 3))
    for maps in (scmap, noisy):  # plateaus (the disk's first cell wins), then noisy maps
        dec.decode(maps, locref, out)
        assert np.array_equal(out, decode_reference(maps, locref, STRIDE, LOCREF_STDEV))
        for b in range(0, 100, 9):
            assert np.array_equal(out[b], _dlc_literal(maps[b], locref[b].reshape(h, w, 8), STRIDE, LOCREF_STDEV))
        # the winning cell lies inside the disk and its offset brings it back onto the
        # human label, to float32 precision
        cell = np.argmax(maps.reshape(100, h * w, 4), axis=1)
        inside = scmap.reshape(100, h * w, 4)[np.arange(100)[:, None], cell, np.arange(4)[None]] == 1
        assert inside.all()
        assert np.abs(out[..., :2] - labels).max() < 1e-4
    assert np.abs(out[..., :2] - labels)[unique].max() < 1e-4
    assert np.array_equal(out[..., 2], np.take_along_axis(flat, cell[:, None], 1)[:, 0].astype(np.float64))
    # without offsets the decode is the winning cell's centre, inside the 17 px disk
    dec.decode(noisy, None, out)
    assert np.array_equal(out, decode_reference(noisy, None, STRIDE, LOCREF_STDEV))
    err = np.hypot(out[..., 0] - labels[..., 0], out[..., 1] - labels[..., 1])
    assert err.max() <= 17.0 and err.mean() > 1.0


def test_rejects_bad_inputs_without_recompiling():
    rng = np.random.default_rng(0)
    scmap, locref = _random(rng, 2, 12, 16, 3)
    dec = Decoder(STRIDE, LOCREF_STDEV, 3, 2)
    out = np.empty((2, 3, 3))
    n_signatures = len(_decode_kernel.signatures)
    bad_scmaps = [
        scmap[:, :, ::2],  # non-contiguous
        np.asfortranarray(scmap),
        scmap.astype(np.float64),
        scmap.astype(scmap.dtype.newbyteorder(">")),
        scmap[..., :2].copy(),  # wrong K
        scmap[0],  # wrong ndim
    ]
    ro = scmap.copy()
    ro.flags.writeable = False
    bad_scmaps.append(ro)
    for bad in bad_scmaps:
        with pytest.raises(DecodeInputError) as err:
            dec.decode(bad, locref, out)
        assert isinstance(err.value, ValueError) and isinstance(err.value, ModelError)
        assert str(err.value)
    for bad in [locref[:, :, :, :5].copy(), locref[:1].copy(), locref[:, :, ::2].copy(), locref[:, :, :8],
                locref.reshape(2, 12, 16, 2, 3), locref.astype(np.float16)]:
        with pytest.raises(DecodeInputError):
            dec.decode(scmap, bad, out)
    for bad_out in [np.empty((1, 3, 3)), np.empty((2, 3, 2)), np.empty((2, 3, 3), np.float32),
                    np.empty((2, 3, 3), order="F").transpose(1, 0, 2)]:
        with pytest.raises(DecodeInputError):
            dec.decode(scmap, locref, bad_out)
    with pytest.raises(DecodeInputError, match="max_batch"):
        Decoder(STRIDE, LOCREF_STDEV, 3, 1).decode(scmap, locref, out)
    with pytest.raises(DecodeInputError):
        dec.decode(scmap, locref, out, n=3)
    with pytest.raises(DecodeInputError):
        Decoder(0, LOCREF_STDEV, 3, 1)
    # valid calls of other shapes and both offset layouts reuse the warm-up signatures
    for B, h, w in [(1, 5, 5), (2, 60, 80), (2, 1, 300)]:
        s, l = _random(rng, B, h, w, 3)
        dec.decode(s, l, out)
        dec.decode(s, l.reshape(B, h, w, 3, 2), out)
        dec.decode(s, None, out, n=np.int32(1))
    assert len(_decode_kernel.signatures) == n_signatures
    with pytest.raises(TypeError):
        dec.decode(scmap, locref, out, n=1.5)


def test_decode_allocates_no_buffers_per_call():
    import tracemalloc

    rng = np.random.default_rng(2)
    scmap, locref = _random(rng, 4, 60, 80, 8)  # 600 KB of maps: any copy or scratch would show
    dec = Decoder(STRIDE, LOCREF_STDEV, 8, 4)
    out = np.empty((4, 8, 3))
    dec.decode(scmap, locref, out)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            dec.decode(scmap, locref, out)
            dec.decode(scmap, None, out, n=2)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 4096 and current - base < 1024
