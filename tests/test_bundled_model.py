"""The bundled openfield model: it ships, describes itself, and finds the mouse on held-out frames.

The tolerances come from the measured validation numbers in docs/model-card.md
(with margin); the frames are the first validation frames of the seeded split in
examples/train_openfield/dataset.py, never seen in training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "train_openfield"))

import dataset  # noqa: E402

ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'rtpose[cpu]')")

from rtpose import models  # noqa: E402
from rtpose.decode import decode_reference  # noqa: E402
from rtpose.errors import ModelError  # noqa: E402
from rtpose.metadata import ModelMetadata  # noqa: E402

NUM_FRAMES = 5
#: Mean error over the NUM_FRAMES frames x 4 points must stay below this (px).
MEAN_TOLERANCE_PX = 4.0
#: Every single point must be within this (px).
POINT_TOLERANCE_PX = 15.0


@pytest.fixture(scope="module")
def session():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(models.default_model_path()), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def meta(session):
    return ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, source="bundled model")


def test_bundled_model_is_small_and_in_the_package():
    path = models.default_model_path()
    assert path.parent == Path(models.__file__).parent
    assert path.suffix == ".onnx"
    assert path.stat().st_size <= 10_000_000


def test_missing_bundled_model_raises_model_error_saying_how_to_rebuild(monkeypatch):
    monkeypatch.setattr(models, "DEFAULT_MODEL_NAME", "no-such-model.onnx")
    with pytest.raises(ModelError, match="train_openfield/train.py"):
        models.default_model_path()


def test_metadata_describes_the_openfield_model(session, meta):
    assert meta.bodyparts == ("snout", "leftear", "rightear", "tailbase")
    assert meta.stride == 8.0
    assert meta.locref_stdev == pytest.approx(7.2801)
    assert meta.location_refinement and meta.locref_output == "locref"
    assert meta.input_color == "RGB" and meta.input_range == "0-255" and meta.preprocessing_in_graph
    assert [i.name for i in session.get_inputs()] == [meta.input_name]
    assert {o.name for o in session.get_outputs()} == {meta.scoremap_output, meta.locref_output}
    assert "training_val_frames" in meta.extra
    # Checked by the exporter's batch-invariance check (`rtpose export` re-checked the file): batched freely.
    assert meta.batch_invariant and meta.extra["batch_invariance.scoremap_max_abs"] == "0"


def test_predictions_on_held_out_frames_match_labels(openfield_dir, session, meta):
    labelled = openfield_dir / "labeled"
    train, val = dataset.split(dataset.load_labels(labelled))
    assert not {f.name for f in train} & {f.name for f in val}
    frames = val[:NUM_FRAMES]
    errors = []
    for fr in frames:
        img = dataset.read_rgb(fr.name, labelled).astype(np.float32)[None]
        scmap, locref = session.run([meta.scoremap_output, meta.locref_output], {meta.input_name: img})
        assert scmap.shape == (1, 60, 80, 4) and locref.shape == (1, 60, 80, 8)
        pose = decode_reference(scmap, locref, meta.stride, meta.locref_stdev)[0]
        errors.append(np.linalg.norm(pose[:, :2] - fr.xy, axis=1))
    errors = np.array(errors)
    assert errors.mean() <= MEAN_TOLERANCE_PX, errors
    assert errors.max() <= POINT_TOLERANCE_PX, errors
