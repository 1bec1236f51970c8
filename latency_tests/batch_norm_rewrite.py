"""Cost of the per-frame batch-norm rewrite: rewritten vs folded vs tf2onnx's batch-wide expansion.

DeepLabCut's TF MobileNetV2 exports freeze their batch norms in training mode.
rtpose's exporter turns each into one ``InstanceNormalization`` (statistics of
each frame's own H x W, what DeepLabCut computes one frame at a time). This
script times, on the same network and the same real 640x480 frames, alternating
one call of each per round (ONNX Runtime CPU, batch 1, the engine's threads):

* ``rewritten``: the model as ``rtpose export`` writes it;
* ``folded``: the same graph with every ``InstanceNormalization`` replaced by an
  inference-mode ``BatchNormalization`` (ONNX Runtime folds it into the
  preceding convolution): what the network costs with ordinary folded batch norm;
* ``tf2onnx``: tf2onnx's own conversion (batch-wide statistics, ~10 small ops
  per batch norm), what rtpose exported before the rewrite.

Goal: rewritten within 1.2x of folded. A DeepLabCut folder whose batch norms are
in inference mode (e.g. ``examples/train_openfield/dlc-exported-openfield-mnv2``,
the default) is first turned into its training-mode twin by setting
``is_training=True`` on every ``FusedBatchNorm*`` node, as DeepLabCut's own
MobileNetV2 builder freezes them. Needs the export extra. Prints p50/p99 and
ratios; asserts nothing.

    .venv/bin/python latency_tests/batch_norm_rewrite.py [--model DLC_FOLDER] [--quick]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, finish, md_table, time_calls, video_frames  # noqa: E402

from rtpose.benchmark.summary import summarize  # noqa: E402

TITLE = "Per-frame batch-norm rewrite vs folded batch norm vs tf2onnx's batch-wide expansion"
GOAL_RATIO = 1.2
DEFAULT_FOLDER = REPO / "examples" / "train_openfield" / "dlc-exported-openfield-mnv2"


def training_mode_copy(folder: Path, dest: Path) -> tuple[Path, int]:
    """``folder`` as is when it has training-mode batch norms, else a copy with ``is_training=True``."""
    from rtpose.exporters import batch_mixing, tf_frozen

    pb = max(folder.glob("snapshot-*.pb"), key=lambda p: int(p.stem.split("-")[-1]))
    graph_def = tf_frozen.read_graph_def(pb)
    if batch_mixing.find(graph_def):
        return folder, 0
    flipped = 0
    for node in graph_def.node:
        if node.op in batch_mixing.BATCH_NORM_OPS:
            node.attr["is_training"].b = True
            flipped += 1
    dest.mkdir(parents=True)
    shutil.copy(folder / "pose_cfg.yaml", dest / "pose_cfg.yaml")
    (dest / pb.name).write_bytes(graph_def.SerializeToString())
    return dest, flipped


def folded_twin(model):
    """The model with every InstanceNormalization as an inference-mode BatchNormalization (mean 0, var 1)."""
    import onnx
    from onnx import helper, numpy_helper

    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    inits = {t.name: t for t in twin.graph.initializer}
    for node in twin.graph.node:
        if node.op_type != "InstanceNormalization":
            continue
        channels = int(np.prod(inits[node.input[1]].dims))
        mean = numpy_helper.from_array(np.zeros(channels, np.float32), f"{node.name}_twin_mean")
        var = numpy_helper.from_array(np.ones(channels, np.float32), f"{node.name}_twin_var")
        twin.graph.initializer.extend([mean, var])
        eps = [a for a in node.attribute if a.name == "epsilon"]
        new = helper.make_node("BatchNormalization", [*node.input[:3], mean.name, var.name], list(node.output),
                               name=node.name, epsilon=eps[0].f if eps else 1e-5)
        node.CopyFrom(new)
    return twin


def tf2onnx_twin(folder: Path):
    """tf2onnx's own conversion of the folder (no rtpose handlers): batch-wide statistics."""
    from rtpose.exporters import batch_mixing, tf_frozen

    pb = max(folder.glob("snapshot-*.pb"), key=lambda p: int(p.stem.split("-")[-1]))
    graph_def = tf_frozen.read_graph_def(pb)
    io = tf_frozen.find_io(graph_def, pb, location_refinement=True)
    real = batch_mixing.tf2onnx_handlers
    batch_mixing.tf2onnx_handlers = lambda counter=None: {}
    try:
        model, _ = tf_frozen.convert(graph_def, io, opset=17, num_bodyparts=1, source=str(pb))
    finally:
        batch_mixing.tf2onnx_handlers = real
    return model


def main(argv=None) -> dict:
    args = cli(__doc__.splitlines()[0], argv)
    import onnx
    import onnxruntime as ort

    from rtpose.exporters import export_model
    from rtpose.model import default_threads

    folder = Path(args.model) if args.model else DEFAULT_FOLDER
    work = Path(tempfile.mkdtemp(prefix="rtpose-bn-"))
    source, flipped = training_mode_copy(folder, work / "trainbn")
    report = export_model(source, work / "rewritten.onnx")
    rewritten = onnx.load(str(report.out))
    models = {"rewritten": rewritten, "folded": folded_twin(rewritten), "tf2onnx": tf2onnx_twin(source)}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = default_threads()
    sessions = {k: ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
                for k, m in models.items()}
    import cv2

    frames = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in video_frames(8 if args.quick else 50)])
    frames = frames.astype(np.float32)  # the model's input: RGB float 0-255
    rounds = 10 if args.quick else 60
    samples = {k: [] for k in sessions}
    for r in range(rounds):  # alternating, so load changes hit all three alike
        x = frames[r % len(frames)][None]
        for name, sess in sessions.items():
            inp = sess.get_inputs()[0].name
            samples[name].append(time_calls(lambda: sess.run(None, {inp: x}), 1, warmup=1 if r == 0 else 0)[0])
    stats = {k: summarize(np.array(v) / 1e6) for k, v in samples.items()}  # ms
    ratio = stats["rewritten"]["p50"] / stats["folded"]["p50"]
    result = {
        "title": TITLE, "model": str(folder), "flipped_to_training_mode": flipped,
        "per_frame_rewrites": len(report.per_frame_rewrites), "threads": default_threads(),
        "frame": "640x480", "rounds": rounds, "stats": stats,
        "ratio_rewritten_vs_folded_p50": ratio,
        "ratio_tf2onnx_vs_rewritten_p50": stats["tf2onnx"]["p50"] / stats["rewritten"]["p50"],
        "goal_ratio": GOAL_RATIO, "goal_met": ratio <= GOAL_RATIO,
    }
    print(f"{TITLE}\nmodel {folder} ({len(report.per_frame_rewrites)} batch norms rewritten"
          + (f"; training mode set on {flipped}" if flipped else "") + f"), {rounds} rounds, 640x480, batch 1, "
          f"{default_threads()} threads")
    print(md_table(["model", "p50 ms", "p99 ms"],
                   [[k, f"{s['p50']:.2f}", f"{s['p99']:.2f}"] for k, s in stats.items()]))
    print(f"rewritten / folded p50: {ratio:.2f}x (goal <= {GOAL_RATIO}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'}); "
          f"tf2onnx / rewritten p50: {result['ratio_tf2onnx_vs_rewritten_p50']:.2f}x")
    shutil.rmtree(work, ignore_errors=True)
    return finish(result, args)


if __name__ == "__main__":
    main()
