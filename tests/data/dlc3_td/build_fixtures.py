"""Build the DeepLabCut 3 top-down fixtures from a real ``deeplabcut.export_model`` export.

Run in the DeepLabCut 3 side environment (never in rtpose's), on the export folder that
``examples/dlc3_topdown/make_model.py`` prints::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 /work/side/dlc3-torch/bin/python tests/data/dlc3_td/build_fixtures.py EXPORT_DIR

It writes, next to this file:

* ``top_down_resnet_50.config.json``: the export's ``config``;
* ``top_down_resnet_50.heads.npz``: the trained layers only (keys ``pose/<name>``, ``detector/<name>``), after
  checking that every other weight of the export equals DeepLabCut's seeded initialisation
  (``dlc3_td_models.seeded_pose_model`` / ``seeded_detector``) and that the rebuilt weights hash as the export's;
* ``top_down_resnet_50.reference.npz``: DeepLabCut's OWN top-down inference on the reference frames (4 synthetic
  two-mouse frames and 2 openfield video frames, 640x480), with DeepLabCut's inference runners
  (``apis/utils.py: get_inference_runners`` with the detector snapshot, as ``analyze_videos`` builds them;
  RGB frames as its video reader gives them):
  - the detector's raw forward (``DetectorInferenceRunner.predict``: torchvision's boxes xyxy and scores, all of
    them, before DeepLabCut's selection): ``raw_boxes`` (concatenated), ``raw_scores``, ``n_raw`` per frame;
  - after DeepLabCut's selection (its detector postprocessor: first ``max_individuals``, COCO xywh):
    ``bboxes`` (N, A, 4) and ``bbox_scores`` (N, A), padded with -1 (DeepLabCut's PadOutputs), ``n_boxes``;
  - the crops' ``offsets`` and ``scales`` (N, A, 2) from DeepLabCut's ``top_down_crop`` on those boxes (-1 pad);
  - the pose model's maps for the crops of frames 0 and 4 (``scoremap``/``locref`` NHWC, after DeepLabCut's own
    crop + normalisation, ``maps_frames``);
  - DeepLabCut's final poses ``poses`` (N, A, K, 3) in frame pixels (``-1`` rows where no box);
  - weights sha256 and versions.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for dlc3_td_models
sys.path.insert(0, str(HERE.parents[2]))  # the repository root, for drivers/

MAPS_FRAMES = (0, 4)


def main(export: str) -> None:
    import deeplabcut
    import numpy as np
    import torch
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_inference_runners
    from deeplabcut.pose_estimation_pytorch.data.image import top_down_crop

    import dlc3_td_models as T

    export = Path(export)
    pt = next(export.glob("*.pt")) if export.is_dir() else export
    raw = torch.load(pt, map_location="cpu", weights_only=True)
    cfg = raw["config"]
    assert cfg["method"] == "td" and raw.get("detector") is not None, (cfg["method"], sorted(raw))
    (HERE / f"{T.NET}.config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    trained = {f"{stage}/{k}": v.numpy() for stage in ("pose", "detector") for k, v in raw[stage].items()
               if T.stored(stage, k)}
    np.savez_compressed(HERE / f"{T.NET}.heads.npz", **trained)
    seeded_states = {"pose": T.seeded_pose_model(cfg).state_dict(), "detector": T.seeded_detector(cfg).state_dict()}
    for stage, seeded in seeded_states.items():
        differ = [k for k in seeded if f"{stage}/{k}" not in trained and not torch.equal(seeded[k], raw[stage][k])]
        assert not differ, f"{stage} weights other than the trained layers differ from the seeded init: {differ[:5]}"
    pose_state, det_state = T.build_states(cfg, HERE / f"{T.NET}.heads.npz")
    sha = T.weights_sha256(pose_state, det_state)
    assert sha == T.weights_sha256(raw["pose"], raw["detector"]), "the rebuilt weights differ from the export's"

    frames_bgr = T.reference_frames()
    frames = [np.ascontiguousarray(f[..., ::-1]) for f in frames_bgr]  # RGB, as DeepLabCut's video reader gives
    with tempfile.TemporaryDirectory() as tmp:
        pose_snap, det_snap = Path(tmp) / "snapshot-001.pt", Path(tmp) / "snapshot-detector-001.pt"
        torch.save({"model": pose_state}, pose_snap)
        torch.save({"model": det_state}, det_snap)
        pose_runner, det_runner = get_inference_runners(cfg, snapshot_path=pose_snap, detector_path=det_snap,
                                                        device="cpu")
        raw_det = []
        predict = det_runner.predict

        def capture(inputs, **kwargs):  # the torchvision detections before DeepLabCut's selection
            out = predict(inputs, **kwargs)
            raw_det.extend(p["detection"] for p in out)
            return out

        det_runner.predict = capture
        bbox_predictions = det_runner.inference(images=frames)
        maps = []
        head = pose_runner.model.heads["bodypart"]
        hook = head.register_forward_hook(lambda mod, inp, out: maps.append(
            {k: v.detach().permute(0, 2, 3, 1).numpy().copy() for k, v in out.items()}))
        predictions = pose_runner.inference(images=list(zip(frames, bbox_predictions)))
        hook.remove()
    a = len(T.INDIVIDUALS)
    params = cfg["data"]["inference"].get("top_down_crop") or {}
    size = (int(params.get("width", 256)), int(params.get("height", 256)))
    n_boxes, offsets, scales = [], np.full((len(frames), a, 2), -1.0), np.full((len(frames), a, 2), -1.0)
    for i, (frame, pred) in enumerate(zip(frames, predictions)):
        boxes = pred["bboxes"]
        found = int((pred["bbox_scores"] >= 0).sum())
        n_boxes.append(found)
        for j in range(found):
            _, off, sc = top_down_crop(frame, boxes[j], size, margin=int(params.get("margin", 0)),
                                       crop_with_context=bool(params.get("crop_with_context", True)))
            offsets[i, j], scales[i, j] = off, sc
    # the pose runner (batch size 1) runs the crops one at a time, frame after frame, in box order
    heat = np.concatenate([m["heatmap"] for m in maps])
    loc = np.concatenate([m["locref"] for m in maps])
    assert len(heat) == sum(n_boxes), (len(heat), n_boxes)
    first = np.concatenate([[0], np.cumsum(n_boxes)])
    per_frame_maps = [{"heatmap": heat[first[i]:first[i + 1]], "locref": loc[first[i]:first[i + 1]]}
                      for i in range(len(n_boxes))]
    keep_maps = {}
    for i in MAPS_FRAMES:
        keep_maps[f"scoremap_{i}"] = per_frame_maps[i]["heatmap"].astype(np.float32)
        keep_maps[f"locref_{i}"] = per_frame_maps[i]["locref"].astype(np.float32)
    versions = [f"deeplabcut {deeplabcut.__version__}", f"torch {torch.__version__}", f"numpy {np.__version__}"]
    np.savez_compressed(
        HERE / f"{T.NET}.reference.npz", **keep_maps,
        frames_synthetic=np.asarray(T.REFERENCE_SYNTHETIC), frames_video=np.asarray(T.REFERENCE_VIDEO),
        maps_frames=np.asarray(MAPS_FRAMES),
        raw_boxes=np.concatenate([d["bboxes"] for d in raw_det]).astype(np.float32),
        raw_scores=np.concatenate([d["scores"] for d in raw_det]).astype(np.float32),
        n_raw=np.asarray([len(d["scores"]) for d in raw_det]),
        bboxes=np.stack([p["bboxes"] for p in predictions]).astype(np.float32),
        bbox_scores=np.stack([p["bbox_scores"] for p in predictions]).astype(np.float32),
        n_boxes=np.asarray(n_boxes), offsets=offsets, scales=scales,
        poses=np.stack([p["bodyparts"] for p in predictions]).astype(np.float32),
        weights_sha256=np.array(sha), versions=np.array(versions))
    print(f"raw detections per frame {[len(d['scores']) for d in raw_det]}; kept {n_boxes}; "
          f"top scores {[np.round(p['bbox_scores'], 3).tolist() for p in predictions]}", flush=True)
    print("poses frame 0:\n", np.stack([p["bodyparts"] for p in predictions])[0].round(2), flush=True)
    print(f"weights {sha[:16]}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
