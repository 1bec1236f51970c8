"""Top-down model metadata (issue 15): TopDownParams in the model file, checked on the way in and out."""

from __future__ import annotations

import pytest

from rtpose.errors import ModelError
from rtpose.metadata import ModelMetadata
from rtpose.multianimal.layout import AnimalLayout
from rtpose.multianimal.params import AssemblyParams
from rtpose.multianimal.topdown_params import TopDownParams

LAYOUT = AnimalLayout(("mouse1", "mouse2"), ("head", "body", "tail"), ())


def test_topdown_metadata_round_trips_through_the_file_props():
    params = TopDownParams(2, crop_width=192, crop_height=256, margin=5, min_bbox_score=0.3,
                           box_score_thresh=0.01, detector_type="SSDLite",
                           detector_variant="ssdlite320_mobilenet_v3_large")
    meta = ModelMetadata(bodyparts=LAYOUT.bodyparts, stride=8.0, clip_scores=True, layout=LAYOUT, topdown=params)
    props = meta.to_props()
    assert "rtpose.multianimal.assembly" not in props and "rtpose.paf_output" not in props
    back = ModelMetadata.from_props(props)
    assert back == meta and back.topdown_model and back.multianimal
    assert back.pose_names[:3] == ("mouse1.head", "mouse1.body", "mouse1.tail")


@pytest.mark.parametrize("extra", [
    {"layout": None},
    {"assembly": AssemblyParams(2, ((0, 1),), 8.0), "paf_output": "paf"},
    {"layout": AnimalLayout(("m1", "m2"), ("head", "body", "tail"), ("light",))},
])
def test_inconsistent_topdown_metadata_is_refused(extra):
    kw = dict(bodyparts=LAYOUT.bodyparts, stride=8.0, layout=LAYOUT, topdown=TopDownParams(2))
    kw.update(extra)
    with pytest.raises(ModelError, match="top-down model metadata"):
        ModelMetadata(**kw)


def test_unknown_or_bad_topdown_parameters_say_to_upgrade_or_re_export():
    with pytest.raises(ModelError, match="unknown to this rtpose"):
        TopDownParams.from_json('{"max_individuals": 2, "future_knob": 1}')
    with pytest.raises(ModelError, match="re-export"):
        TopDownParams.from_json("{not json")
    with pytest.raises(ModelError, match="max_individuals"):
        TopDownParams(0)
