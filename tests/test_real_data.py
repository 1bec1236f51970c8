"""The bundled model on the real openfield video: offline analysis of every frame, and the demo."""

import pytest

from rtpose.cli import main
from rtpose.data import demo_video_path
from rtpose.recording import read_dlc_table

BODYPARTS = ["snout", "leftear", "rightear", "tailbase"]


@pytest.mark.slow
def test_analyze_the_whole_real_video_gives_one_row_per_frame(tmp_path, capsys):
    assert main(["analyze", str(demo_video_path()), "--out-dir", str(tmp_path), "--batch", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "captured 2330 = processed 2330 + dropped 0" in out
    for suffix in (".rtpose.h5", ".rtpose.csv"):
        table = read_dlc_table(tmp_path / f"m3v1mp4{suffix}")
        assert table.shape == (2330, 12)
        assert list(table.index) == list(range(2330))
        assert list(table.columns.get_level_values("bodyparts").unique()) == BODYPARTS
        assert list(table.columns.get_level_values("coords").unique()) == ["x", "y", "likelihood"]
    # the mouse is found: on most frames every bodypart is confident and inside the 640x480 image
    table = read_dlc_table(tmp_path / "m3v1mp4.rtpose.h5")
    like = table.xs("likelihood", axis=1, level="coords")
    assert (like.min(axis=1) > 0.5).mean() > 0.8
    xs = table.xs("x", axis=1, level="coords").to_numpy()
    assert ((xs >= 0) & (xs < 640)).all()


def test_demo_runs_live_on_the_bundled_model_and_video(tmp_path, capsys):
    assert main(["demo", "--frames", "45", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "captured 45 = processed" in out and "(OK)" in out and "FPS" in out
    assert "end_to_end" in out
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert len(read_dlc_table(tmp_path / "m3v1mp4.rtpose.h5")) >= 1
