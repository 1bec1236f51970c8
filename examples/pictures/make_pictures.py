"""Make the example pictures of docs/offline-tools.md and the README from the real openfield video.

    python examples/pictures/make_pictures.py [--work DIR]

Runs the bundled model over the bundled video (rtpose analyze, ~1-2 min on two cores), then
``rtpose render`` (a frame of the labelled video -> docs/render-example.png), ``rtpose plot``
(-> docs/plot-example.png), the live preview's drawing on a paced replay of the video with a
window that saves what it would show (-> docs/preview-example.png) and ``rtpose outliers``
(four of the picked frames with their pre-filled labels -> docs/outliers-example.png).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from rtpose.cli import main as rtpose
from rtpose.data import demo_video_path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SKELETON = "snout-leftear,snout-rightear,leftear-tailbase,rightear-tailbase"
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 9]


def frame_of(video: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    for _ in range(index + 1):
        ok, frame = capture.read()
    capture.release()
    return frame


def preview_picture(video: Path, out: Path, frames: int = 240) -> None:
    """The preview sink on a live (paced) replay, with a 'window' that keeps the last image it was shown."""
    from rtpose.drivers.sources.video import VideoFileSource
    from rtpose.model import load_model
    from rtpose.pipeline import Pipeline, PipelineConfig
    from rtpose.sinks.preview import PreviewSink
    from rtpose.viz.overlay import parse_skeleton

    class SavingWindow:
        image = None

        def __init__(self, title):
            pass

        def show(self, image):
            SavingWindow.image = image.copy()
            return True

        def close(self):
            pass

    model = load_model(None)
    preview = PreviewSink(SavingWindow, skeleton=parse_skeleton(SKELETON, model.metadata.bodyparts))
    summary = Pipeline([VideoFileSource(video, paced=True)], model, sinks=[preview],
                       config=PipelineConfig(live=True, max_frames=frames)).run()
    print(f"preview: {summary.sinks['preview']}")
    cv2.imwrite(str(out), SavingWindow.image, PNG)


def outliers_picture(work: Path, poses: Path, video: Path, out: Path) -> None:
    """Four of the picked frames (the best of each reason first), cropped around the mouse, with the labels
    rtpose outliers pre-filled drawn as rtpose render draws poses."""
    import pandas as pd

    from rtpose.labelling import pick_outliers
    from rtpose.recording.reader import read_recording
    from rtpose.viz.overlay import PoseOverlay, parse_skeleton

    project = work / "project"
    shutil.rmtree(project, ignore_errors=True)
    assert rtpose(["outliers", str(poses), str(video), "--out", str(project), "--scorer", "rtpose", "--n", "20"]) == 0
    folder = project / "labeled-data" / video.stem
    table = pd.read_hdf(folder / "CollectedData_rtpose.h5")
    rec = read_recording(poses)
    picks = sorted(pick_outliers(rec.pose, rec.frame, 20, rec.bodyparts), key=lambda p: -p.score)
    chosen = list({p.reason: p for p in reversed(picks)}.values())  # the best of each reason
    chosen += [p for p in picks if p not in chosen][: 4 - len(chosen)]
    overlay = PoseOverlay(rec.bodyparts, 640, 480, skeleton=parse_skeleton(SKELETON, rec.bodyparts), trail=0,
                          legend=False)
    tiles = []
    for p in sorted(chosen[:4], key=lambda p: p.frame):
        name = f"img{p.frame:04d}.png"
        image = cv2.imread(str(folder / name))
        labels = table.loc[("labeled-data", video.stem, name)].to_numpy().reshape(-1, 2)
        pose = np.concatenate([labels, rec.pose[p.row, :, 2:]], axis=1)  # drawn with the model's likelihoods
        overlay.draw(image, pose, frame_index=p.frame, t_s=p.frame / 30.0)
        centre = np.nanmean(labels, axis=0)  # a 320x240 crop around the mouse
        x0, y0 = int(np.clip(centre[0] - 160, 0, 320)), int(np.clip(centre[1] - 120, 0, 240))
        tile = image[y0:y0 + 240, x0:x0 + 320].copy()
        cv2.rectangle(tile, (0, 220), (320, 240), (0, 0, 0), -1)
        cv2.putText(tile, f"{name}: {p.reason} ({', '.join(p.bodyparts)})", (4, 235), cv2.FONT_HERSHEY_SIMPLEX,
                    0.42, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    sheet = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:4])])
    cv2.imwrite(str(out), sheet, PNG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="rtpose-pictures-"))
    work.mkdir(parents=True, exist_ok=True)
    video = demo_video_path()
    poses = work / f"{video.stem}.rtpose.h5"
    if not poses.exists():
        assert rtpose(["analyze", str(video), "--out-dir", str(work), "--quiet"]) == 0
    labelled = work / "labelled.mp4"
    assert rtpose(["render", str(video), str(poses), "--out", str(labelled), "--skeleton", SKELETON,
                   "--overwrite"]) == 0
    cv2.imwrite(str(DOCS / "render-example.png"), frame_of(labelled, 420), PNG)
    assert rtpose(["plot", str(poses), "--video", str(video), "--out", str(work / "plot.png"), "--overwrite"]) == 0
    image = cv2.imread(str(work / "plot.png"))
    cv2.imwrite(str(DOCS / "plot-example.png"), cv2.resize(image, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA),
                PNG)
    preview_picture(video, DOCS / "preview-example.png")
    outliers_picture(work, poses, video, DOCS / "outliers-example.png")
    for name in ("render", "plot", "preview", "outliers"):
        path = DOCS / f"{name}-example.png"
        print(f"{path}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
