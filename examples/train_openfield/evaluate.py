"""Evaluate the shipped ONNX model on the validation frames and draw the model card's figure.

    .venv/bin/python examples/train_openfield/evaluate.py

Runs ``rtpose/models/openfield-mnv2.onnx`` (or --model) with onnxruntime on the
held-out labelled PNGs (the seeded split of ``dataset.py``), decodes exactly as
DeepLabCut (``rtpose.decode.decode_reference``), prints mean pixel error per
bodypart, overall, PCK@5 and PCK@10, and writes the figure
``docs/model-card-validation.png`` (predictions vs labels). No TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import dataset  # noqa: E402
import metrics  # noqa: E402

DEFAULT_MODEL = ROOT / "rtpose" / "models" / "openfield-mnv2.onnx"
DEFAULT_FIGURE = ROOT / "docs" / "model-card-validation.png"
COLORS = {"snout": "#e41a1c", "leftear": "#377eb8", "rightear": "#4daf4a", "tailbase": "#ff7f00"}


def predict(model_path: Path, frames, threads: int = 2) -> np.ndarray:
    """Run the ONNX model on each frame (RGB uint8 read from the PNG); returns (N, K, 3) x, y, score."""
    import onnxruntime as ort

    from rtpose.decode import decode_reference
    from rtpose.metadata import ModelMetadata

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
    meta = ModelMetadata.from_props(sess.get_modelmeta().custom_metadata_map, source=str(model_path))
    if tuple(meta.bodyparts) != dataset.BODYPARTS:
        raise SystemExit(f"{model_path} has bodyparts {meta.bodyparts}, expected {dataset.BODYPARTS}")
    out_names = [meta.scoremap_output] + ([meta.locref_output] if meta.locref_output else [])
    poses = []
    for fr in frames:
        img = dataset.read_rgb(fr.name).astype(np.float32)[None]
        res = sess.run(out_names, {meta.input_name: img})
        loc = res[1] if len(res) > 1 else None
        poses.append(decode_reference(res[0], loc, meta.stride, meta.locref_stdev)[0])
    return np.stack(poses)


def draw_figure(frames, poses, errors, path: Path, half: int = 90) -> None:
    """One panel per frame, cropped around the animal: labels (circles) vs predictions (crosses)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(frames)
    cols = 5
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.75))
    for ax in np.ravel(axes):
        ax.axis("off")
    for i, (fr, pose, err) in enumerate(zip(frames, poses, errors)):
        ax = np.ravel(axes)[i]
        img = dataset.read_rgb(fr.name)
        cx, cy = np.nanmean(fr.xy, axis=0)
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(img.shape[1], cx + half)), int(min(img.shape[0], cy + half))
        ax.imshow(img[y0:y1, x0:x1], extent=(x0, x1, y1, y0))
        for k, bp in enumerate(dataset.BODYPARTS):
            ax.plot(*fr.xy[k], "o", ms=7, mfc="none", mec=COLORS[bp], mew=1.5)
            ax.plot(*pose[k, :2], "x", ms=7, color=COLORS[bp], mew=1.5)
        ax.set_title(f"{fr.name}  mean {np.nanmean(err):.1f} px", fontsize=8)
    handles = [plt.Line2D([], [], ls="", marker="s", color=COLORS[bp], label=bp) for bp in dataset.BODYPARTS]
    handles += [plt.Line2D([], [], ls="", marker="o", mfc="none", mec="k", label="label"),
                plt.Line2D([], [], ls="", marker="x", color="k", label="prediction")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    fig.suptitle("openfield-mnv2.onnx on held-out frames (o = human label, x = model)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--split", choices=("val", "train"), default="val")
    p.add_argument("--figure", default=str(DEFAULT_FIGURE), help="PNG to write ('' for none)")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)

    train, val = dataset.split(dataset.load_labels())
    frames = val if args.split == "val" else train
    poses = predict(args.model, frames)
    errors = metrics.pose_errors(poses[:, :, :2], np.stack([fr.xy for fr in frames]))
    summary = metrics.summarise(errors, dataset.BODYPARTS)
    summary["split"] = args.split
    summary["frames"] = [fr.name for fr in frames]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.model.name} on {len(frames)} {args.split} frames ({summary['num_points']} points)")
        for bp, e in summary["per_bodypart_px"].items():
            print(f"  {bp:9s} {e:6.2f} px")
        print(f"  mean      {summary['mean_px']:6.2f} px   median {summary['median_px']:.2f}   max {summary['max_px']:.2f}")
        print(f"  PCK@5     {summary['pck5']:.3f}\n  PCK@10    {summary['pck10']:.3f}")
    if args.figure and args.split == "val":
        draw_figure(frames, poses, errors, Path(args.figure))
        print(f"figure: {args.figure}")
    return summary


if __name__ == "__main__":
    main()
