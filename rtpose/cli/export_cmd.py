"""``rtpose export``: a DeepLabCut/TensorFlow model -> one self-describing, self-checked ONNX file.

Needs the export extra (``pip install 'rtpose[export]'``); TensorFlow is imported
only once the command runs.
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="export a DeepLabCut/TensorFlow model to ONNX (checked against TensorFlow)",
        description="Export a DeepLabCut exported-model folder (pose_cfg.yaml + snapshot-*.pb), a TF SavedModel or "
                    "a .keras/.h5 file to one ONNX file with its metadata inside. Every export is compared with "
                    "TensorFlow on check frames and fails above the documented tolerance (docs/export.md).")
    p.add_argument("src", help="DeepLabCut exported-model folder, SavedModel folder, or .keras/.h5 file")
    p.add_argument("--out", default=None, help="ONNX file to write (default: beside SRC, named after it)")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (I/O stay float32); checked vs FP32")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13-18 (default 17)")
    p.add_argument("--input", choices=("float", "uint8-bgr"), default="float",
                   help="uint8-bgr: the model takes frames as OpenCV gives them (uint8 BGR) and converts them "
                        "inside the graph, so rtpose only copies each frame; checked like the float model "
                        "(default: float, the source model's own input)")
    p.add_argument("--check", nargs="+", metavar="IMAGES", default=None,
                   help="images (or folders of them) for the numeric check (default: synthetic frames)")
    p.add_argument("--meta", default=None, metavar="YAML",
                   help="model description for a SavedModel/Keras source (bodyparts, stride, ...); default: "
                        "<model>.yaml/.json or rtpose.yaml beside it")
    p.add_argument("--bodyparts", default=None, help="comma-separated bodypart names (overrides the YAML)")
    p.add_argument("--stride", type=float, default=None, help="input pixels per score-map cell (overrides the YAML)")
    p.add_argument("--locref-stdev", type=float, default=None, help="offset scale (overrides the YAML)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rtpose.exporters import export_model

    bodyparts = [b.strip() for b in args.bodyparts.split(",") if b.strip()] if args.bodyparts else None
    report = export_model(args.src, args.out, fp16=args.fp16, opset=args.opset, check_images=args.check,
                          bodyparts=bodyparts, stride=args.stride, locref_stdev=args.locref_stdev,
                          description=args.meta, uint8_bgr=args.input == "uint8-bgr")
    print(report.summary())
    return 0
