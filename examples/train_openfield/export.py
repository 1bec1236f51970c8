"""Export the trained openfield Keras model to the bundled ONNX file with rtpose's exporter.

    .venv/bin/python examples/train_openfield/export.py [--keras out/final.keras] [--out rtpose/models/openfield-mnv2.onnx]

Uses :func:`rtpose.exporters.export_keras_model` (TF vs ONNX parity checked on the
validation PNGs), then adds the training facts from ``train_info.json`` to the
file's metadata as ``rtpose.extra.training_*``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
DEFAULT_OUT = ROOT / "rtpose" / "models" / "openfield-mnv2.onnx"


def training_extra(info: dict) -> dict[str, str]:
    """The facts about training that go into the ONNX metadata (strings)."""
    v = info.get("final_validation_tf", {})
    return {
        "training_data": "DeepLabCut openfield-Pranav-2018-10-30 labels (m4s1), 100 frames 640x480",
        "training_recipe": "examples/train_openfield/train.py (docs/model-card.md)",
        "training_seed": str(info.get("seed")),
        "training_steps": str(info.get("steps")),
        "training_batch": str(info.get("batch")),
        "training_crop": str(info.get("crop")),
        "training_wall_time_s": str(info.get("wall_time_s")),
        "training_val_frames": json.dumps(info.get("val_frames", [])),
        "training_val_mean_px": f"{v.get('mean_px', float('nan')):.3f}",
        "training_val_pck5": f"{v.get('pck5', float('nan')):.3f}",
        "architecture": "MobileNetV2 alpha 0.35 (output stride 16) + DeepLabCut deconv head (stride 8), from scratch",
    }


def add_props(path: Path, extra: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for k, v in extra.items():
        e = model.metadata_props.add()
        e.key, e.value = "rtpose.extra." + k, v
    tmp = path.with_name("." + path.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keras", type=Path, default=HERE / "out" / "final.keras")
    p.add_argument("--info", type=Path, default=None, help="train_info.json (default: beside --keras)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import dataset
    from rtpose.exporters import export_keras_model

    model = tf.keras.models.load_model(args.keras, compile=False)
    _, val = dataset.split(dataset.load_labels())
    report = export_keras_model(model, args.out, bodyparts=list(dataset.BODYPARTS), stride=8, locref_stdev=7.2801,
                                scoremap_output="scoremap", locref_output="locref",
                                check_images=[dataset.DATA_DIR / fr.name for fr in val])
    print(report.summary())
    info_path = args.info or args.keras.parent / "train_info.json"
    if info_path.exists():
        add_props(args.out, training_extra(json.loads(info_path.read_text())))
    else:
        print(f"note: {info_path} not found; training facts not added to the metadata")
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
