"""``rtpose outliers``: pick frames where the model is unsure or jumps, for DeepLabCut to label.

Writes the frames as PNGs and the model's predictions as starting labels into
``labeled-data/<video>/`` of a DeepLabCut project (``CollectedData_<scorer>.h5``
and ``.csv``, DeepLabCut's own layout): correct them in DeepLabCut's labelling
GUI, then create a training dataset and retrain as usual. Labels already in the
folder are kept; only new frames are added.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .common import positive_int


def register(sub) -> None:
    p = sub.add_parser("outliers", help="write the frames the model is unsure about into a DeepLabCut project",
                       description=__doc__)
    p.add_argument("poses", metavar="POSES.h5", help="poses of VIDEO (rtpose analyze / run --record, or DeepLabCut)")
    p.add_argument("video", metavar="VIDEO", help="the video the poses are of")
    p.add_argument("--n", type=positive_int, default=20, help="how many frames to pick (default 20)")
    p.add_argument("--config", default=None, metavar="config.yaml",
                   help="the DeepLabCut project's config.yaml: frames go to its labeled-data/, labelled by its scorer")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="without --config: the project folder to write labeled-data/<video>/ into")
    p.add_argument("--scorer", default=None, help="without --config: the scorer name of the labels (the project's)")
    p.add_argument("--pcutoff", type=float, default=0.6,
                   help="likelihood below which a point counts as unsure (default 0.6, DeepLabCut's pcutoff)")
    p.add_argument("--jump-factor", type=float, default=5.0,
                   help="a confident point jumps when its step exceeds this many times its local median step (default 5)")
    p.add_argument("--min-gap", type=positive_int, default=10, metavar="FRAMES",
                   help="pick no two frames closer than this (default 10: neighbours are near duplicates to label)")
    p.set_defaults(func=main)


def _project(args: argparse.Namespace) -> tuple[Path, str, list[str] | None, dict | None]:
    if args.config:
        import yaml

        path = Path(args.config)
        try:
            cfg = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"--config {path} does not exist; give the DeepLabCut project's config.yaml") from None
        if not isinstance(cfg, dict) or "scorer" not in cfg or "bodyparts" not in cfg:
            raise ConfigError(f"{path} is not a DeepLabCut config.yaml (no scorer/bodyparts)")
        if cfg.get("multianimalproject"):
            raise ConfigError(f"{path} is a multi-animal project; rtpose outliers writes single-animal labels")
        if args.scorer and args.scorer != cfg["scorer"]:
            raise ConfigError(f"--scorer {args.scorer} differs from the project's scorer {cfg['scorer']}; DeepLabCut "
                              "trains only on its own scorer's labels: leave --scorer out")
        return path.parent, str(cfg["scorer"]), list(cfg["bodyparts"]), cfg
    if not args.out or not args.scorer:
        raise ConfigError("give --config PROJECT/config.yaml (recommended), or both --out PROJECT_DIR and --scorer NAME")
    return Path(args.out), args.scorer, None, None


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from ..labelling import pick_outliers, write_labeled_data
    from ..labelling.labeled_data import image_name, read_frames
    from ..recording.reader import read_recording

    if not 0 < args.pcutoff <= 1:
        raise ConfigError(f"--pcutoff {args.pcutoff}: give a likelihood in (0, 1]")
    if not args.jump_factor > 1:
        raise ConfigError(f"--jump-factor {args.jump_factor}: give a factor above 1, e.g. 5")
    project, scorer, cfg_bodyparts, cfg = _project(args)
    rec = read_recording(args.poses)
    pose, bodyparts = rec.pose, rec.bodyparts
    if cfg_bodyparts is not None:
        if sorted(cfg_bodyparts) != sorted(bodyparts):
            raise ConfigError(f"the poses have bodyparts {', '.join(bodyparts)} but the project labels "
                              f"{', '.join(cfg_bodyparts)}; use the model trained on this project")
        pose = pose[:, [bodyparts.index(b) for b in cfg_bodyparts]]
        bodyparts = tuple(cfg_bodyparts)
    picks = pick_outliers(pose, rec.frame, args.n, bodyparts, pcutoff=args.pcutoff, jump_factor=args.jump_factor,
                          min_gap=args.min_gap)
    if not picks:
        print(f"no frame of {Path(args.poses).name} is unsure (likelihood < {args.pcutoff:g}) or jumps: nothing to label")
        return 0
    frames, n_video = read_frames(args.video, [p.frame for p in picks])
    points = {p.frame: np.where(pose[p.row, :, 2:3] >= 0, pose[p.row, :, :2], np.nan) for p in picks}
    folder, added, skipped = write_labeled_data(project, args.video, frames, points, scorer=scorer,
                                                bodyparts=bodyparts, n_video_frames=n_video)
    fewer = (f"; no more frames are unsure or jump at least {args.min_gap} frames apart" if len(picks) < args.n
             else "")
    print(f"picked {len(picks)} frames of {Path(args.video).name} (asked for {args.n}{fewer}):")
    print(f"   {'frame':>6}  {'image':<14}{'why':<13}{'score':>6}  {'min lik':>7}  {'jump':>6}  parts")
    for p in picks:
        note = "  (already labelled, kept)" if p.frame in skipped else ""
        print(f"   {p.frame:6d}  {image_name(p.frame, n_video):<14}{p.reason:<13}{p.score:6.2f}  {p.min_likelihood:7.2f}"
              f"  {p.jump_ratio:5.1f}x  {', '.join(p.bodyparts)}{note}")
    print(f"   wrote {len(added)} frames and CollectedData_{scorer}.h5/.csv to {folder}")
    if cfg is not None:
        listed = {Path(v).stem for v in (cfg.get("video_sets") or {})}
        if Path(args.video).stem not in listed:
            print(f"   note: {Path(args.video).name} is not in the project's video_sets; DeepLabCut's "
                  "create_training_dataset only reads labeled-data folders of listed videos: "
                  f"deeplabcut.add_new_videos({str(args.config)!r}, [{str(args.video)!r}], copy_videos=False)")
    print("   next: correct the points in DeepLabCut's labelling GUI (deeplabcut.label_frames), then "
          "deeplabcut.create_training_dataset and retrain")
    return 0
