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


def test_sigterm_stops_a_live_run_cleanly_and_keeps_the_recording(analytic_model, tmp_path):
    """A real process on an endless synthetic camera; SIGTERM once it has recorded frames."""
    out = tmp_path / "live.h5"
    proc = subprocess.Popen([sys.executable, "-m", "rtpose", "run", "--source", "synthetic:160x120@30",
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
