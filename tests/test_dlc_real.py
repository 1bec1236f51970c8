"""Real DeepLabCut TF exports (made by DeepLabCut 3.0.2's own network builders, random init,
``deeplabcut.export_model``; tests/fixtures/dlc_real) through rtpose, against DeepLabCut-Live.

For each fixture (MobileNetV2-0.35, EfficientNet-B0, ResNet-50):

* the export check passes, every training-mode batch norm (DeepLabCut's MobileNetV2 has 52, the
  others none) is rewritten per frame, and the export declares batch invariance;
* ``rtpose analyze`` at ``--batch 1``, ``8`` and ``32`` gives identical poses on real 640x480
  frames of the openfield video, equal to DeepLabCut-Live 1.1.0's ``get_pose`` (stored
  reference, computed in a side environment by tests/fixtures/dlc_real/build.py) within
  0.05 px where the score-map maximum is unambiguous, likelihoods within 2e-3 (see GOAL_LIKELIHOOD).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.export, pytest.mark.slow]
_WHY = "TensorFlow/tf2onnx not installed: install the export extra (pip install 'rtpose[export]') to run exporter tests"
pytest.importorskip("tensorflow", reason=_WHY)
pytest.importorskip("tf2onnx", reason=_WHY)

import cv2  # noqa: E402

import dlc_real  # noqa: E402
from rtpose.cli import main as cli_main  # noqa: E402
from rtpose.data import demo_video_path  # noqa: E402
from rtpose.exporters import export_model  # noqa: E402
from rtpose.recording.dlc_table import read_dlc_table  # noqa: E402

GOAL_PX = 0.05
#: Likelihoods: TensorFlow 2.15 (DeepLabCut-Live) and 2.21 agree to 1e-7 on these graphs, ONNX Runtime
#: and TensorFlow to 1.1e-3 at the maxima (2.6e-3 anywhere in the maps) on the random-init MobileNetV2,
#: whose 52 per-frame normalisations amplify float32 rounding on the flat arena; the same
#: training-mode batch norms with trained weights (the bundled model's) differ by 1.6e-4.
GOAL_LIKELIHOOD = 2e-3
#: A keypoint's maximum is unambiguous when the best score-map cell beats the second best by more
#: than this: far above the TF/ONNX Runtime score differences (~2e-4 on these nets), so both pick it.
UNAMBIGUOUS_MARGIN = 1e-3


@pytest.fixture(scope="module", params=dlc_real.NETS)
def net(request, tmp_path_factory):
    name = request.param
    folder = dlc_real.materialize(name, tmp_path_factory.mktemp(name) / f"DLC_openfield_{name}")
    report = export_model(folder, folder.parent / f"{name}.onnx")
    return name, folder, report


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """The reference frames of the openfield video (read in order, as the reference build did), as PNGs."""
    indices = [int(i) for i in dlc_real.reference(dlc_real.NETS[0])["frame_indices"]]
    cap = cv2.VideoCapture(str(demo_video_path()))
    where = tmp_path_factory.mktemp("frames") / "openfield"
    where.mkdir()
    paths, index = [], 0
    while len(paths) < len(indices):
        ok, frame = cap.read()
        assert ok, f"the bundled video ended before frame {indices[len(paths)]}"
        if index in indices:
            paths.append(str(where / f"frame{index:05d}.png"))
            cv2.imwrite(paths[-1], frame)
        index += 1
    cap.release()
    return indices, paths


def test_the_export_rewrites_deeplabcuts_training_mode_batch_norms_and_is_batch_invariant(net):
    name, folder, report = net
    training = dlc_real.ops(name)["fused_batch_norm"]["is_training_true"]
    assert len(report.per_frame_rewrites) == training
    assert training == (52 if name.startswith("mobilenet") else 0)
    assert report.parity.ok and report.batch_invariance.ok
    assert report.metadata.batch_invariant and report.metadata.extra["per_frame_rewrites"] == str(training)


def test_analyze_at_batch_1_8_32_is_identical_and_equals_deeplabcut_live(net, frames, tmp_path):
    name, _, report = net
    indices, paths = frames
    ref = dlc_real.reference(name)
    assert [int(i) for i in ref["frame_indices"]] == indices
    poses = {}
    for batch in (1, 8, 32):
        out = tmp_path / f"b{batch}"
        assert cli_main(["analyze", *paths, "--model", str(report.out), "--batch", str(batch), "--out-dir",
                         str(out), "--quiet"]) == 0
        poses[batch] = read_dlc_table(out / "openfield.rtpose.h5").to_numpy().reshape(len(paths), -1, 3)
    np.testing.assert_array_equal(poses[8], poses[1])
    np.testing.assert_array_equal(poses[32], poses[1])
    clear = ref["margins"] > UNAMBIGUOUS_MARGIN
    # At least one body part's worth (the random-init ResNet-50's leftear and tailbase maps are ~1e-17
    # everywhere: 15 of its 32 maxima are clear).
    assert clear.sum() >= len(paths), f"{name}: too few unambiguous maxima to compare ({clear.sum()} of {clear.size})"
    px = np.hypot(*(poses[8][..., :2] - ref["poses"][..., :2]).transpose(2, 0, 1))
    assert px[clear].max() < GOAL_PX and px[clear].mean() < GOAL_PX, (name, px)
    assert np.abs(poses[8][..., 2] - ref["poses"][..., 2]).max() < GOAL_LIKELIHOOD
