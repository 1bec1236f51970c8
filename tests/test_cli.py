"""The `rtpose` command end to end (in-process main() and real subprocesses)."""

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from rtpose.cli import main
from rtpose.recording import read_dlc_table


def test_run_synthetic_prints_summary_with_exact_accounting(analytic_model, tmp_path, capsys):
    out = tmp_path / "rec.h5"
    code = main(["run", "--source", "synthetic:320x240@30", "--frames", "90", "--no-pace", "--quiet",
                 "--model", str(analytic_model), "--record", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "captured 90 = processed" in text and "(OK)" in text
    assert "spinning off" in text  # how the model ran is in the summary
    for stage in ("queue", "preprocess", "inference", "decode", "predict", "emit", "end_to_end"):
        assert stage in text
    assert len(read_dlc_table(out)) >= 1


def test_analyze_images_in_the_order_given(analytic_model, tmp_path, capsys):
    import cv2

    from drivers_helpers import synthetic_frames

    frames, _ = synthetic_frames(5)
    paths = []
    for i in (3, 1, 4, 0, 2):
        p = tmp_path / "imgs" / f"img{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), frames[i])
        paths.append(str(p))
    code = main(["analyze", *paths, "--model", str(analytic_model), "--out-dir", str(tmp_path / "res"), "--quiet"])
    assert code == 0
    table = read_dlc_table(tmp_path / "res" / "imgs.rtpose.h5")
    assert list(table.index) == paths
    csv = read_dlc_table(tmp_path / "res" / "imgs.rtpose.csv")
    assert list(csv.index) == paths


def test_analyze_video_writes_one_row_per_frame(analytic_model, tmp_path, capsys):
    import cv2

    from drivers_helpers import synthetic_frames

    frames, _ = synthetic_frames(40)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for f in frames:
        writer.write(f)
    writer.release()
    assert main(["analyze", str(video), "--model", str(analytic_model), "--batch", "4", "--quiet"]) == 0
    table = read_dlc_table(tmp_path / "clip.rtpose.h5")
    assert list(table.index) == list(range(40))
    assert "processed 40 + dropped 0" in capsys.readouterr().out


def test_analyze_with_resize_and_crop_reports_full_frame_poses(analytic_model, tmp_path, capsys):
    import cv2
    import numpy as np

    from drivers_helpers import synthetic_frames

    frames, _ = synthetic_frames(12)
    paths = []
    for i, frame in enumerate(frames):
        p = tmp_path / "imgs" / f"img{i:02d}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), frame)
        paths.append(str(p))
    assert main(["analyze", *paths, "--model", str(analytic_model), "--out-dir", str(tmp_path / "full"),
                 "--quiet"]) == 0
    assert main(["analyze", *paths, "--model", str(analytic_model), "--out-dir", str(tmp_path / "small"),
                 "--resize", "0.5", "--crop", "0,320,0,240", "--quiet"]) == 0
    full = read_dlc_table(tmp_path / "full" / "imgs.rtpose.h5").to_numpy().reshape(12, -1, 3)
    small = read_dlc_table(tmp_path / "small" / "imgs.rtpose.h5").to_numpy().reshape(12, -1, 3)
    assert np.abs(small[..., :2] - full[..., :2]).max() <= 1.0


def test_run_with_dynamic_crop_records_the_box_of_every_frame(analytic_model, tmp_path, capsys):
    out = tmp_path / "dyn.h5"
    assert main(["run", "--source", "synthetic:320x240@30", "--frames", "30", "--no-pace", "--quiet",
                 "--model", str(analytic_model), "--record", str(out), "--dynamic-crop", "0.2,30"]) == 0
    timing = pd.read_csv(tmp_path / "dyn_timing.csv")
    assert len(timing) >= 1 and (timing["crop_x1"] >= 0).all() and (timing["crop_x2"] <= 320).all()
    assert tuple(timing.loc[0, ["crop_x1", "crop_x2", "crop_y1", "crop_y2"]]) == (0, 320, 0, 240)  # nothing seen yet
    if len(timing) >= 2:  # live: how many frames were processed depends on the machine; the second is cropped
        assert timing.loc[1, "crop_x2"] - timing.loc[1, "crop_x1"] < 320


def test_bad_framing_options_are_one_clear_line(analytic_model, capsys):
    assert main(["run", "--source", "synthetic", "--model", str(analytic_model), "--crop", "1,2,3"]) == 2
    assert "X1,X2,Y1,Y2" in capsys.readouterr().err
    assert main(["run", "--source", "synthetic", "--model", str(analytic_model), "--dynamic-crop", "0.5"]) == 2
    assert "THRESHOLD,MARGIN" in capsys.readouterr().err
    assert main(["run", "--source", "synthetic:320x240@30", "--frames", "2", "--no-pace", "--quiet",
                 "--model", str(analytic_model), "--crop", "0,400,0,100"]) == 2
    assert "beyond the 320x240 frame" in capsys.readouterr().err


def test_errors_are_one_clear_line_and_exit_2(tmp_path, capsys):
    assert main(["run", "--source", "video:/nonexistent.mp4", "--model", str(tmp_path / "none.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.mp4")]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_bad_source_spec_names_the_accepted_forms(analytic_model, capsys):
    assert main(["run", "--source", "webcam-please", "--model", str(analytic_model)]) == 2
    err = capsys.readouterr().err
    assert "synthetic" in err and "camera:" in err


def test_info_shows_metadata_and_providers(analytic_model, capsys):
    assert main(["info", str(analytic_model)]) == 0
    out = capsys.readouterr().out
    assert "head, body, tail" in out and "stride: 8" in out and "CPUExecutionProvider" in out


def test_sigterm_stops_a_live_run_cleanly_and_keeps_the_recording(analytic_model, tmp_path, popen):
    """A real process on an endless synthetic camera; SIGTERM once it has recorded frames."""
    out = tmp_path / "live.h5"
    proc = popen([sys.executable, "-m", "rtpose", "run", "--source", "synthetic:160x120@30",
                             "--model", str(analytic_model), "--record", str(out)],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait (by reading its status lines, not by sleeping) until it has processed some frames
    for line in proc.stderr:
        if "processed" in line and int(line.split("processed")[1].split()[0]) >= 5:
            break
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, stdout
    assert "(OK)" in stdout
    frames_written = int(stdout.split("frames_written=")[1].split(",")[0])
    assert frames_written >= 5
    assert len(read_dlc_table(out)) == frames_written
    assert len(pd.read_csv(tmp_path / "live_timing.csv")) == frames_written


def test_the_runtime_never_imports_tensorflow(analytic_model, tmp_path):
    """A whole `rtpose run` (all subcommands registered) in a fresh interpreter leaves TensorFlow and torch unimported."""
    code = (
        "import sys\n"
        "from rtpose.cli import main\n"
        f"status = main(['run', '--source', 'synthetic:160x120@30', '--frames', '10', '--no-pace', '--quiet',"
        f" '--model', {str(analytic_model)!r}, '--record', {str(tmp_path / 'r.h5')!r}])\n"
        "assert status == 0, status\n"
        "loaded = [m for m in ('tensorflow', 'tf2onnx', 'keras', 'torch', 'deeplabcut') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_help_texts_are_plain_text():
    """--help shows the modules' docstrings: without reStructuredText markup (``code``, :mod:`x`)."""
    from rtpose.cli import COMMANDS, build_parser, plain_text

    parser = build_parser()
    texts = [parser.format_help()]
    subcommands = parser._subparsers._group_actions[0].choices
    texts += [subcommands[name].format_help() for name in COMMANDS]
    for text in texts:
        assert "`" not in text and ":mod:" not in text, text
    assert plain_text("see ``rtpose run`` and :func:`~.x.open` or `y`") == "see rtpose run and .x.open or y"


def _live_summary(captured, processed, ms_per_frame, seconds=10.0, batch=1):
    from rtpose.pipeline import RunSummary, StreamCounts

    stages = {"preprocess": 0.0, "inference": ms_per_frame, "decode": 0.0, "predict": 0.0, "emit": 0.0}
    return RunSummary(streams=[StreamCounts("video:x.mp4", captured, processed, captured - processed, 30.0)],
                      duration_s=seconds, latency_ms={k: {"mean": v} for k, v in stages.items()}, provider="cpu",
                      batch_size=batch, live=True)


def test_the_summary_explains_dropped_frames_in_one_line():
    from rtpose.cli.report import drop_note, format_summary

    slow = _live_summary(captured=300, processed=168, ms_per_frame=59.5)  # 30 FPS in, ~17 FPS possible
    note = drop_note(slow)
    assert note.startswith("dropped 44% of frames: processing takes 59.5 ms per frame (at most 17 FPS)")
    assert "30 FPS" in note and "smaller input" in note and "GPU" in note and "\n" not in note
    assert note in format_summary(slow, "")
    hiccup = drop_note(_live_summary(captured=300, processed=290, ms_per_frame=10.0))
    assert "keeps up on average" in hiccup and "other programs" in hiccup
    assert drop_note(_live_summary(captured=300, processed=300, ms_per_frame=59.5)) is None
    offline = _live_summary(captured=300, processed=300, ms_per_frame=59.5)
    offline.live = False
    assert drop_note(offline) is None


def test_the_trigger_summary_is_rounded():
    from rtpose.drivers.outputs import open_output
    from rtpose.results import Action
    from rtpose.sinks.trigger import TriggerSink

    sink = TriggerSink(open_output("emulator"))
    try:
        sink.output.send(Action("pulse", "r", 0, 0, channel=0, duration_ms=5))
        assert sink.output.wait_for(lambda s: s["acked"] == 1, 30)
    finally:
        sink.close()
    summary = sink.summary()
    for key in ("rtt_ms_p50", "rtt_ms_p99", "rtt_ms_max"):
        assert summary[key] == round(summary[key], 3)


def test_info_counts_repeated_frame_sizes(capsys):
    from rtpose.metadata import compress_listing

    assert main(["info"]) == 0  # the bundled model: its parity check ran on 15 frames of one size
    out = capsys.readouterr().out
    assert "parity.frames: 15 (15 × 480x640)" in out and "480x640, 480x640" not in out
    assert compress_listing("3 (480x640, 480x640, 240x320)") == "3 (2 × 480x640, 1 × 240x320)"
    assert compress_listing("2 (480x640, 240x320)") == "2 (480x640, 240x320)"
    assert compress_listing("scoremap 0.001, locref 0.01") == "scoremap 0.001, locref 0.01"
