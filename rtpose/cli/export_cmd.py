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
    p.add_argument("--decode-in-graph", action="store_true",
                   help="also decode inside the graph: the model returns (batch, bodyparts, 3) poses besides the "
                        "maps and rtpose fetches only those (less data from a GPU); checked bit for bit against "
                        "rtpose's decoder. SRC may also be an rtpose .onnx file (e.g. the bundled model): the "
                        "decode is added to it and written to --out (default <name>-decode.onnx)")
    p.add_argument("--check", nargs="+", metavar="IMAGES", default=None,
                   help="images (or folders of them) for the numeric check (default: synthetic frames)")
    p.add_argument("--meta", default=None, metavar="YAML",
                   help="model description for a SavedModel/Keras source (bodyparts, stride, ...); default: "
                        "<model>.yaml/.json or rtpose.yaml beside it")
    p.add_argument("--int8", action="store_true",
                   help="also write a statically quantised INT8 (QDQ) model, calibrated on --calibrate frames and "
                        "kept only if it passes the accuracy gate against FP32 on --labels (mean pose shift <= 0.3 px, "
                        "PCK@5 not lower); SRC may also be an rtpose FP32 .onnx file")
    p.add_argument("--calibrate", nargs="+", metavar="VIDEO_OR_IMAGES", default=None,
                   help="with --int8: a video (64 frames evenly spaced are used) or images/folders of real frames")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="with --int8: DeepLabCut labels (CollectedData_*.csv, or its folder) with the images beside "
                        "it, for the accuracy gate")
    p.add_argument("--bodyparts", default=None, help="comma-separated bodypart names (overrides the YAML)")
    p.add_argument("--stride", type=float, default=None, help="input pixels per score-map cell (overrides the YAML)")
    p.add_argument("--locref-stdev", type=float, default=None, help="offset scale (overrides the YAML)")
    p.add_argument("--skeleton", default=None, metavar="A-B,B-C",
                   help="body-part pairs pictures join with a line (rtpose render, the live preview), stored in "
                        "the model (extra.skeleton), e.g. snout-leftear,snout-rightear")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from rtpose.exporters import export_model

    from pathlib import Path

    from rtpose.errors import ExportError

    bodyparts = [b.strip() for b in args.bodyparts.split(",") if b.strip()] if args.bodyparts else None
    if args.int8:
        if not args.calibrate or not args.labels:
            raise ExportError("--int8 needs --calibrate VIDEO_OR_IMAGES (real frames to calibrate on) and --labels "
                              "CSV (DeepLabCut labelled frames for the accuracy gate)")
        if args.fp16:
            raise ExportError("--int8 quantises the FP32 model; leave out --fp16")
        if args.decode_in_graph:
            raise ExportError("--int8 and --decode-in-graph in one go are not supported; add the decode to the INT8 "
                              "file afterwards: rtpose export MODEL-int8.onnx --decode-in-graph")
    src = Path(args.src)
    extra = None
    if args.skeleton:
        import json

        pairs = [edge.strip().split("-") for edge in args.skeleton.split(",") if edge.strip()]
        if any(len(pair) != 2 or not all(pair) for pair in pairs):
            raise ExportError(f"--skeleton {args.skeleton}: write pairs of body parts, e.g. snout-leftear,snout-rightear")
        extra = {"skeleton": json.dumps(pairs)}
    if args.int8 and src.suffix.lower() == ".onnx":
        fp32 = src  # an rtpose FP32 export: quantise it as it is
    else:
        fp32_out = args.out if not args.int8 else None  # with --int8, --out names the INT8 file
        report = export_model(args.src, fp32_out, fp16=args.fp16, opset=args.opset, check_images=args.check,
                              bodyparts=bodyparts, stride=args.stride, locref_stdev=args.locref_stdev,
                              description=args.meta, uint8_bgr=args.input == "uint8-bgr", extra=extra,
                              decode_in_graph=args.decode_in_graph)
        print(report.summary())
        fp32 = report.out
    if args.int8:
        from rtpose.exporters import quantize_int8

        out = Path(args.out) if args.out else fp32.with_name(fp32.stem + "-int8.onnx")
        print(quantize_int8(fp32, out, calibrate=args.calibrate, labels=args.labels).summary())
    return 0
