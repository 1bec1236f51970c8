"""--resize, --crop and dynamic cropping on the synthetic mouse with ground truth: poses stay within 1 px of the
full-frame result while the animal is inside the box the model saw, come back in full-frame pixels, fall back to
the whole frame when the animal is lost, and the box travels with every frame (recording, ZeroMQ)."""

import numpy as np
import pandas as pd
import pytest

from rtpose.drivers.sources.synthetic import BACKGROUND_GREY, SyntheticSource
from rtpose.errors import ConfigError, ModelInputError
from rtpose.framing import CropBox, DynamicCrop, Framing
from rtpose.model import OnnxPoseModel
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.recording import RecorderSink
from rtpose.sinks.base import Sink

W, H = 320, 240
FULL = (0, W, 0, H)
#: poses of a cropped/resized frame vs the full frame's, while the animal is inside the box
AGREEMENT_PX = 1.0
#: the analytic model's centroid window reaches this far around a keypoint (tests/analytic_model.py)
INSIDE_PX = 24


class BoxSink(Sink):
    """Keeps every frame's pose and crop box."""

    name = "boxes"

    def __init__(self):
        self.pose, self.box = {}, {}

    def open(self, streams):
        pass

    def write(self, batch):
        for i in range(batch.n):
            f = int(batch.frame_index[i])
            self.pose[f] = batch.pose[i].copy()
            self.box[f] = tuple(int(v) for v in batch.crop_box[i])

    def close(self):
        pass


class VanishingMouse(SyntheticSource):
    """The synthetic mouse, gone (background only) in frames ``gone[0] <= i < gone[1]``."""

    def __init__(self, gone=(0, 0), **kw):
        super().__init__(**kw)
        self.gone = gone

    def render(self, frame_index, out):
        super().render(frame_index, out)
        if self.gone[0] <= frame_index < self.gone[1]:
            out.fill(BACKGROUND_GREY)


def _source(n, seed=7, gone=(0, 0)):
    return VanishingMouse(width=W, height=H, fps=30.0, n_frames=n, seed=seed, gone=gone)


def _run(model_path, source, framing=None, *, live=False, batch=1, sinks=()):
    sink = BoxSink()
    config = PipelineConfig(live=live, batch_size=batch, ring_slots=2 * batch + 1, framing=framing)
    summary = Pipeline([source], OnnxPoseModel(model_path), sinks=[sink, *sinks], config=config).run()
    assert summary.captured == summary.processed + summary.dropped
    return sink


def _inside(truth, box, margin=INSIDE_PX):
    x1, x2, y1, y2 = box
    return bool(((truth[:, 0] >= x1 + margin) & (truth[:, 0] < x2 - margin) &
                 (truth[:, 1] >= y1 + margin) & (truth[:, 1] < y2 - margin)).all())


@pytest.fixture(scope="module")
def full_frame(analytic_model):
    """Reference: every frame of seed 7 (mouse gone in frames 40..49) on the whole frame."""
    src = _source(90, gone=(40, 50))
    return src, _run(analytic_model, src)


def test_resize_half_keeps_poses_within_a_pixel_in_full_frame_coordinates(analytic_model, full_frame):
    src, ref = full_frame
    got = _run(analytic_model, _source(90, gone=(40, 50)), Framing(resize=0.5), batch=4)
    assert sorted(got.pose) == list(range(90))
    seen = [f for f in range(90) if not 40 <= f < 50]
    for f in seen:
        assert got.box[f] == FULL
        err = np.abs(got.pose[f][:, :2] - ref.pose[f][:, :2]).max()
        assert err <= AGREEMENT_PX, (f, err)
    assert np.abs(got.pose[0][:, :2] - src.truth(0)).max() < 2.0  # full-frame pixels, not half


def test_static_crop_agrees_inside_and_reports_a_lost_animal_outside(analytic_model, full_frame):
    src, ref = full_frame
    box = (W // 2 - 3, W, 5, H)  # right half; an origin off the stride grid on purpose
    got = _run(analytic_model, _source(90, gone=(40, 50)), Framing(crop=CropBox(*box)), batch=4)
    inside = outside = 0
    for f in range(90):
        assert got.box[f] == box
        if 40 <= f < 50:
            continue
        truth = src.truth(f)
        if _inside(truth, box):
            inside += 1
            assert np.abs(got.pose[f][:, :2] - ref.pose[f][:, :2]).max() <= AGREEMENT_PX, f
        x_out = truth[:, 0] < box[0] - INSIDE_PX
        if x_out.any():
            outside += 1
            assert (got.pose[f][x_out, 2] < 0.5).all(), f  # not found, and said so
    assert inside >= 10 and outside >= 5  # the path crosses the crop's edge (seed 7)


def test_crop_and_resize_together(analytic_model, full_frame):
    src, ref = full_frame
    box = (8, W - 16, 0, H - 8)
    got = _run(analytic_model, _source(90, gone=(40, 50)), Framing(crop=CropBox(*box), resize=0.5))
    agreed = 0
    for f in range(90):
        if not 40 <= f < 50 and _inside(src.truth(f), box):
            agreed += 1
            assert np.abs(got.pose[f][:, :2] - ref.pose[f][:, :2]).max() <= AGREEMENT_PX, f
    assert agreed >= 60


def test_dynamic_crop_follows_the_mouse_and_falls_back_to_the_full_frame_when_it_is_lost(
        analytic_model, full_frame, tmp_path):
    src, ref = full_frame
    dynamic = DynamicCrop(threshold=0.5, margin_px=40)
    rec = RecorderSink(tmp_path / "dyn.h5")
    got = _run(analytic_model, _source(90, gone=(40, 50)), Framing(dynamic=dynamic), sinks=[rec])
    assert got.box[0] == FULL  # nothing seen yet
    cropped = 0
    for f in range(90):
        box = got.box[f]
        if 40 <= f < 50:
            assert (got.pose[f][:, 2] < 0.5).all()
            # the frame after the mouse vanished is the whole frame again (nothing confident to follow)
            assert box == FULL or f == 40, (f, box)
            continue
        if f == 50:
            assert box == FULL  # found again on the whole frame ...
        if box != FULL:
            cropped += 1
            x1, x2, y1, y2 = box
            assert (x2 - x1) % 8 == 0 and (y2 - y1) % 8 == 0  # grown to the stride: few input sizes
            prev = got.pose[f - 1]
            confident = prev[prev[:, 2] >= 0.5]
            # the box holds the previous frame's confident keypoints plus the margin (or reaches the edge)
            assert x1 == 0 or x1 <= confident[:, 0].min() - 39
            assert x2 == W or x2 >= confident[:, 0].max() + 39
            assert y1 == 0 or y1 <= confident[:, 1].min() - 39
            assert y2 == H or y2 >= confident[:, 1].max() + 39
        if _inside(src.truth(f), box):
            assert np.abs(got.pose[f][:, :2] - ref.pose[f][:, :2]).max() <= AGREEMENT_PX, f
    assert got.box[51] != FULL  # ... and followed from the next frame on
    assert cropped >= 70
    timing = pd.read_csv(tmp_path / "dyn_timing.csv")
    boxes = timing[["crop_x1", "crop_x2", "crop_y1", "crop_y2"]].to_numpy()
    np.testing.assert_array_equal(boxes, [got.box[f] for f in timing["frame"]])


def test_dynamic_crop_on_a_live_run_agrees_wherever_the_mouse_is_inside_its_box(analytic_model, full_frame):
    src, ref = full_frame
    framing = Framing(dynamic=DynamicCrop(0.5, 40), resize=0.5)
    got = _run(analytic_model, _source(90, gone=(40, 50)), framing, live=True)
    assert got.pose
    for f, box in got.box.items():
        if not 40 <= f < 50 and _inside(src.truth(f), box):
            assert np.abs(got.pose[f][:, :2] - ref.pose[f][:, :2]).max() <= AGREEMENT_PX, f


def test_dynamic_crop_needs_one_frame_at_a_time_and_one_camera(analytic_model):
    framing = Framing(dynamic=DynamicCrop())
    with pytest.raises(ConfigError, match="--batch 1"):
        _run(analytic_model, _source(4), framing, batch=2)
    with pytest.raises(ConfigError, match="one camera per process"):
        Pipeline([_source(4), _source(4)], OnnxPoseModel(analytic_model),
                 config=PipelineConfig(live=True, batch_size=2, framing=framing)).run()


def test_a_crop_smaller_than_the_stride_is_refused_with_what_to_do(analytic_model):
    with pytest.raises(ConfigError, match="smaller than the model stride"):
        _run(analytic_model, _source(4), Framing(crop=CropBox(0, 12, 0, 12), resize=0.5))


def test_a_fixed_size_model_refuses_other_sizes_and_says_to_re_export(tmp_path):
    from analytic_model import build_zero_model

    model = OnnxPoseModel(build_zero_model(tmp_path / "fixed.onnx", input_hw=(64, 64)))
    model.prepare(1, 64, 64)
    with pytest.raises(ModelInputError, match="re-export it with a dynamic height and width"):
        model.set_input_size(32, 48)
    with pytest.raises(ModelInputError, match="exported for 64x64"):
        model.prepare(1, 32, 32)


def test_set_input_size_reuses_the_prepared_buffers(analytic_model):
    model = OnnxPoseModel(analytic_model)
    model.prepare(1, H, W)
    frame = np.zeros((H, W, 3), np.uint8)
    _source(1).render(0, frame)
    full_in, full_maps = model.input_buffer, model.run(1)[0]
    model.set_input_size(120, 160)
    model.load_frame(0, frame[:120, :160])
    scmap, locref = model.run(1)  # first run at this size: learns the map size
    assert scmap.shape == (1, 15, 20, 3) and locref.shape == (1, 15, 20, 3, 2)
    assert np.shares_memory(model.input_buffer, full_in) and np.shares_memory(scmap, full_maps)
    again, _ = model.run(1)  # now through the preallocated binding
    np.testing.assert_array_equal(again, scmap)
    with pytest.raises(ModelInputError, match="outside"):
        model.set_input_size(H + 8, W)


def test_each_dynamic_size_keeps_its_binding_and_gives_the_same_maps_when_it_comes_back(analytic_model):
    """A dynamic crop switches sizes every few frames: a size seen before reuses its IOBinding (none is rebuilt),
    and its maps are what a model that never switched gives."""
    frame = np.zeros((H, W, 3), np.uint8)
    _source(1).render(0, frame)
    sizes = [(120, 160), (64, 96), (120, 160), (H, W), (64, 96)]
    model = OnnxPoseModel(analytic_model)
    model.prepare(1, H, W)
    seen, bindings = {}, {}
    for h, w in sizes * 2:
        model.set_input_size(h, w)
        model.load_frame(0, frame[:h, :w])
        scmap, locref = model.run(1)
        if (h, w) in seen:
            np.testing.assert_array_equal(scmap, seen[(h, w)][0])
            np.testing.assert_array_equal(locref, seen[(h, w)][1])
            if (h, w) in bindings:
                assert model._bindings[(1, False, h, w)] is bindings[(h, w)]
            bindings[(h, w)] = model._bindings[(1, False, h, w)]
        else:
            seen[(h, w)] = scmap.copy(), locref.copy()
    for (h, w), (scmap, _) in seen.items():  # the same as a model that only ever ran that size
        fresh = OnnxPoseModel(analytic_model)
        fresh.prepare(1, h, w)
        fresh.load_frame(0, frame[:h, :w])
        np.testing.assert_array_equal(fresh.run(1)[0], scmap)
