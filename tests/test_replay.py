"""rtpose replay: a live run's recording, replayed through the rules it ran with, gives exactly its events."""

import numpy as np
import pandas as pd
import pytest

from rtpose.cli import main
from rtpose.drivers.outputs import open_output
from rtpose.drivers.sources.synthetic import SyntheticSource
from rtpose.model import OnnxPoseModel
from rtpose.pipeline import Pipeline, PipelineConfig
from rtpose.recording import RecorderSink
from rtpose.recording.reader import read_recording
from rtpose.rules import load_rules
from rtpose.rules.offline import replay_rules
from rtpose.sinks.base import Sink
from rtpose.sinks.trigger import TriggerSink

N_FRAMES = 300  # 10 s at 30 FPS: the body enters x < 155 near frame 90 and leaves x > 165 near frame 205


def _rules(tmp_path, left_x=155, name="rules.yaml"):
    """Zones with hysteresis on the measured and the predicted pose, a minimum duration, a speed with a
    refractory period: everything whose result depends on the recorded times and poses."""
    path = tmp_path / name
    path.write_text(f"""
version: 1
defaults: {{min_likelihood: 0.0}}
rules:
  - name: left
    pose: measured
    enter: {{zone: {{bodypart: body, rectangle: [[0, 0], [{left_x}, 240]]}}}}
    stay: {{zone: {{bodypart: body, rectangle: [[0, 0], [{left_x + 10}, 240]]}}}}
    actions: [{{pulse: {{channel: 0, ms: 10}}}}]
  - name: left_predicted
    pose: predicted
    enter: {{zone: {{bodypart: body, rectangle: [[0, 0], [155, 240]]}}}}
    min_duration_ms: 50
    actions: [{{high: {{channel: 1}}}}, event]
  - name: fast
    pose: measured
    enter: {{speed: {{bodypart: head, above: 65}}}}
    refractory_ms: 300
    actions: [{{pulse: {{channel: 2, ms: 5}}}}]
""")
    return path


class ActionLog(Sink):
    """What the rules decided live, as the trigger sink received it."""

    name = "actions"

    def __init__(self):
        self.actions = []

    def write(self, batch):
        self.actions.extend((a.t_ns, a.frame_index, a.stream, a.kind, a.rule, a.channel, a.duration_ms)
                            for a in batch.actions)


@pytest.fixture(scope="module")
def live_recording(analytic_model, tmp_path_factory):
    """A live run (capture stamps as frame times, the newest-frame policy dropping frames) with rules and
    the null trigger output, recorded."""
    tmp = tmp_path_factory.mktemp("replay")
    model = OnnxPoseModel(analytic_model)
    rules = _rules(tmp)
    log = ActionLog()
    camera = SyntheticSource(width=320, height=240, fps=30.0, n_frames=N_FRAMES, seed=0, paced=True)
    pipeline = Pipeline([camera], model,
                        stages=[load_rules(rules, model.metadata.bodyparts)],
                        sinks=[TriggerSink(open_output("null")), log, RecorderSink(tmp / "live.h5")],
                        config=PipelineConfig(live=True))
    summary = pipeline.run()
    assert summary.processed > 0
    return tmp, rules, log.actions, summary


def test_replaying_a_live_run_with_its_rules_gives_exactly_its_events(live_recording, capsys):
    tmp, rules, live_actions, _ = live_recording
    recorded = pd.read_csv(tmp / "live_events.csv", keep_default_na=False)
    triggers = recorded[recorded.kind == "trigger"].reset_index(drop=True)
    fired = set(triggers[triggers.detail == "on"].name)
    assert {"left", "left_predicted", "fast"} <= fired, "the run must exercise every rule for the test to mean much"

    assert main(["replay", str(tmp / "live.h5"), "--rules", str(rules), "--out", str(tmp / "again")]) == 0
    out = capsys.readouterr().out
    assert f"identical to the {len(triggers)} trigger events recorded live" in out
    replayed = pd.read_csv(tmp / "again_events.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(replayed, triggers)
    actions = pd.read_csv(tmp / "again_actions.csv")
    assert list(actions.itertuples(index=False, name=None)) == live_actions


def test_other_rules_show_what_they_would_have_done(live_recording, capsys):
    tmp, _, _, _ = live_recording
    wider = _rules(tmp, left_x=200, name="wider.yaml")
    assert main(["replay", str(tmp / "live.h5"), "--rules", str(wider), "--out", str(tmp / "wider")]) == 0
    out = capsys.readouterr().out
    assert "differs from the recorded trigger events" in out
    recorded = pd.read_csv(tmp / "live_events.csv", keep_default_na=False)
    replayed = pd.read_csv(tmp / "wider_events.csv", keep_default_na=False)

    def on(table, rule):
        return table[(table.kind == "trigger") & (table.name == rule) & (table.detail == "on")].frame.tolist()

    assert on(replayed, "left")[0] < on(recorded, "left")[0]  # a wider zone is entered earlier
    for rule in ("left_predicted", "fast"):  # the other rules are unchanged
        assert on(replayed, rule) == on(recorded, rule)


def test_replay_refuses_to_replace_outputs_and_needs_frame_times(live_recording, tmp_path, capsys):
    tmp, rules, _, _ = live_recording
    main(["replay", str(tmp / "live.h5"), "--rules", str(rules), "--out", str(tmp / "twice")])
    assert main(["replay", str(tmp / "live.h5"), "--rules", str(rules), "--out", str(tmp / "twice")]) == 2
    assert "already exists" in capsys.readouterr().err
    # a DeepLabCut pose file alone has no frame times: said plainly
    rec = read_recording(tmp / "live.h5")
    rec_table = pd.read_hdf(tmp / "live.h5")
    rec_table.to_hdf(tmp_path / "bare.h5", key="df_with_missing", format="table")
    assert main(["replay", str(tmp_path / "bare.h5"), "--rules", str(rules)]) == 2
    assert "replay needs the recorded frame times" in capsys.readouterr().err
    assert len(rec) == len(rec_table)


def test_the_recording_reads_back_bit_for_bit(live_recording):
    """Replay is exact only if the numbers are: the predicted CSV must parse to the very float64 written."""
    tmp, rules, _, _ = live_recording
    rec = read_recording(tmp / "live.h5")
    raw = pd.read_csv(tmp / "live_predicted.csv", header=[0, 1, 2], index_col=0, dtype=str)
    written = np.array([float(v) for v in raw.to_numpy().ravel()]).reshape(rec.predicted.shape)
    assert np.array_equal(written, rec.predicted, equal_nan=True)  # Python's float() is correctly rounded
    stage = load_rules(rules, rec.bodyparts)
    a = replay_rules(stage, rec.bodyparts, frame_index=rec.frame, stream=rec.stream, t_frame_ns=rec.t_frame_ns,
                     pose=rec.pose, predicted=rec.predicted)
    b = replay_rules(stage, rec.bodyparts, frame_index=rec.frame, stream=rec.stream, t_frame_ns=rec.t_frame_ns,
                     pose=rec.pose, predicted=rec.predicted)
    assert a.events == b.events and a.actions == b.actions  # the stage is reset: a second replay is the same


def test_a_multi_animal_recording_replays_per_animal_with_its_track_ids(tmp_path, capsys):
    """A multi-animal recording (DeepLabCut's four column levels, track ids in the timing table) replays
    through rules that name animals: the events and actions say which slot, and a rule on a track id
    follows the recorded ids."""
    from rtpose.multianimal.layout import AnimalLayout
    from rtpose.results import PoseBatch, StreamInfo

    layout = AnimalLayout(("mouse1", "mouse2"), ("snout", "tailbase"))
    n = 6
    batch = PoseBatch(n, layout.n_flat, n_animals=2)
    batch.n = n
    batch.frame_index[:] = np.arange(n)
    batch.t_frame_ns[:] = np.arange(n) * 33_333_333
    animals = layout.animals(batch.pose[:n])
    animals[:, :, :, 2] = 1.0
    animals[:, 0, :, :2] = [300, 300]  # mouse1 stays far away
    animals[:, 1, :, 0] = np.arange(n)[:, None] * 20.0 + 10  # mouse2 walks right: x = 10, 30, ..., 110
    animals[:, 1, :, 1] = 50
    batch.predicted[:n] = batch.pose[:n]
    batch.track_id[:] = [[3, 8]] * 3 + [[3, 9]] * 3  # from frame 3 slot mouse2 holds another animal
    rec = RecorderSink(tmp_path / "ma.h5")
    rec.open([StreamInfo("synthetic", 640, 480, 30.0, layout.flat_names(), layout=layout)])
    rec.write(batch)
    rec.close()
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
version: 1
defaults: {min_likelihood: 0.5, pose: measured}
rules:
  - name: left
    enter: {zone: {bodypart: snout, rectangle: [[0, 0], [40, 100]]}}
    actions: [{pulse: {channel: 0, ms: 10}}]
  - name: track9_right
    animal: 9
    enter: {zone: {bodypart: snout, rectangle: [[60, 0], [200, 100]]}}
    actions: [event]
""")
    assert main(["replay", str(tmp_path / "ma.h5"), "--rules", str(rules), "--out", str(tmp_path / "re")]) == 0
    events = pd.read_csv(tmp_path / "re_events.csv")
    actions = pd.read_csv(tmp_path / "re_actions.csv")
    on = events[events["detail"] == "on"]
    assert on[["name", "frame", "animal"]].values.tolist() == [["left", 0, 1], ["track9_right", 3, 1]]
    assert actions[["rule", "kind", "animal"]].values.tolist() == [["left", "pulse", 1], ["track9_right", "event", 1]]
