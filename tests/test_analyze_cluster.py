"""Issue 13: `rtpose analyze --cluster` on Dask distributed - a local cluster of 2 worker processes gives the
same files as a single-process run, and a worker killed mid-video is retried without duplicate rows."""

from __future__ import annotations

import json
import os
import signal
import threading

import pandas as pd
import pytest

from offline_clips import write_clip
from rtpose.cli import main
from rtpose.recording import read_dlc_table

distributed = pytest.importorskip("distributed", reason="needs the `cluster` extra (pip install 'rtpose[cluster]')")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _dask_process_singletons():
    """Dask starts two things once per process and keeps them until it exits: multiprocessing's resource
    tracker (a child process) and its offload thread. Started here, before each test's own resource
    check takes its snapshot, so that check still catches what a test itself leaves behind."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    distributed.utils._offload_executor.submit(lambda: None).result()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exp")
    return [write_clip(folder / "a.avi", 30), write_clip(folder / "b.avi", 24, start=500)]


def test_a_local_cluster_of_two_workers_writes_what_a_single_process_writes(tmp_path, clips, capsys):
    folder = str(clips[0].parent)
    assert main(["analyze", folder, "--out-dir", str(tmp_path / "one"), "--quiet", "--threads", "1"]) == 0
    assert main(["analyze", folder, "--out-dir", str(tmp_path / "two"), "--quiet", "--threads", "1",
                 "--cluster", "local:2"]) == 0
    out = capsys.readouterr().out
    assert "2 input(s) on Dask cluster local:2" in out
    for clip in clips:
        name = clip.stem + ".rtpose"
        pd.testing.assert_frame_equal(read_dlc_table(tmp_path / "two" / f"{name}.h5"),
                                      read_dlc_table(tmp_path / "one" / f"{name}.h5"))
        assert (tmp_path / "two" / f"{name}.csv").read_text() == (tmp_path / "one" / f"{name}.csv").read_text()
        status = json.loads((tmp_path / "two" / f"{name}.status.json").read_text())
        assert status["status"] == "complete" and status["runs"][0]["pid"] != os.getpid()
    # the status files are the single-machine ones: a rerun without the cluster skips both videos
    assert main(["analyze", folder, "--out-dir", str(tmp_path / "two"), "--quiet", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for clip in clips:
        assert f"   {clip}: already analysed completely with the same model and settings: skipped" in lines


def test_a_worker_killed_mid_video_is_retried_without_duplicate_rows(tmp_path, capsys):
    clip = write_clip(tmp_path / "long.avi", 240)
    assert main(["analyze", str(clip), "--out-dir", str(tmp_path / "ref"), "--quiet", "--threads", "1"]) == 0
    reference = read_dlc_table(tmp_path / "ref" / "long.rtpose.h5")
    out = tmp_path / "out"
    status_file = out / "long.rtpose.status.json"
    partial_h5 = out / "long.rtpose.partial.h5"
    killed = []
    finished = threading.Event()

    def kill_the_worker_once_rows_are_on_disk():
        while not finished.is_set():
            if partial_h5.exists() and status_file.exists():
                status = json.loads(status_file.read_text())
                if status["status"] == "running":
                    killed.append(status["runs"][-1]["pid"])
                    os.kill(killed[0], signal.SIGKILL)
                    return
            finished.wait(0.02)  # polls the files; the run itself is not timed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        killer = threading.Thread(target=kill_the_worker_once_rows_are_on_disk)
        killer.start()
        try:
            code = main(["analyze", str(clip), "--out-dir", str(out), "--quiet", "--threads", "1", "--cluster",
                         cluster.scheduler_address])
        finally:
            finished.set()
            killer.join()
    assert killed, "the video finished before a worker could be killed; use a longer clip"
    assert code == 0
    status = json.loads((out / "long.rtpose.status.json").read_text())
    assert len(status["runs"]) == 2 and status["runs"][1]["pid"] != killed[0] and status["runs"][1]["first_frame"] > 0
    table = read_dlc_table(out / "long.rtpose.h5")
    assert list(table.index) == list(range(240))
    pd.testing.assert_frame_equal(table, reference)
