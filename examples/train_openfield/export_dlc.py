"""Write the trained openfield model as a DeepLabCut exported-model folder (for side-by-side
runs with DeepLabCut-Live and as a real input for ``rtpose export``).

    .venv/bin/python examples/train_openfield/export_dlc.py [--keras out/final.keras] [--out DIR]

The folder holds ``pose_cfg.yaml`` and ``snapshot-<steps>.pb``: a frozen
``tf.compat.v1`` graph rebuilt op by op from the Keras weights (Conv2D,
FusedBatchNormV3, Relu6, depthwise convolutions, transposed convolutions), with
DeepLabCut's node names: input ``Placeholder`` (float32 [None, None, None, 3],
RGB 0-255, scaling inside), outputs ``Sigmoid`` (score maps) and
``pose/locref_pred/block4/BiasAdd`` (offsets). The graph ends with that BiasAdd
node followed by ``Sigmoid``, the order DeepLabCut-Live relies on. The script
checks the graph against the Keras model and prints the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def build_graph(model, tf):
    """Rebuild the Keras network as a frozen tf.compat.v1 GraphDef with DeepLabCut node names."""
    import net

    v1 = tf.compat.v1
    g = tf.Graph()

    weights = {layer.name: [np.asarray(a) for a in layer.get_weights()] for layer in model.layers}
    epsilons = {layer.name: float(getattr(layer, "epsilon", 0.0)) for layer in model.layers}

    def w(name):
        return weights[name]

    def conv(h, name, stride=1):
        (k,) = w(name)
        return tf.nn.conv2d(h, tf.constant(k), strides=[1, stride, stride, 1], padding="SAME", name=name)

    def dw(h, name, stride):
        (k,) = w(name)
        return tf.nn.depthwise_conv2d(h, tf.constant(k), strides=[1, stride, stride, 1], padding="SAME", name=name)

    def bn(h, name):
        gamma, beta, mean, var = w(name)
        y, _, _ = v1.nn.fused_batch_norm(h, gamma, beta, mean=mean, variance=var, epsilon=epsilons[name],
                                          is_training=False, name=name)
        return y

    def deconv(h, name, scope):
        k, b = w(name)
        shape = tf.shape(h)
        out_shape = tf.stack([shape[0], shape[1] * 2, shape[2] * 2, k.shape[2]])
        with tf.name_scope(scope):
            y = tf.nn.conv2d_transpose(h, tf.constant(k), out_shape, strides=[1, 2, 2, 1], padding="SAME",
                                       name="conv2d_transpose")
            return tf.nn.bias_add(y, tf.constant(b), name="BiasAdd")

    with g.as_default():
        x = v1.placeholder(tf.float32, [None, None, None, 3], name="Placeholder")
        h = tf.subtract(tf.multiply(x, 1.0 / 127.5), 1.0, name="preprocess")
        h = tf.nn.relu6(bn(conv(h, "stem", 2), "stem_bn"))
        b = 0
        for t, c, n, s in net._SETTINGS:
            for i in range(n):
                name = f"block{b}"
                inp = h
                if t != 1:
                    h = tf.nn.relu6(bn(conv(h, name + "_expand"), name + "_expand_bn"))
                h = tf.nn.relu6(bn(dw(h, name + "_dw", s if i == 0 else 1), name + "_dw_bn"))
                h = bn(conv(h, name + "_project"), name + "_project_bn")
                if (s if i == 0 else 1) == 1 and inp.shape[-1] == h.shape[-1]:
                    h = tf.add(inp, h, name=name + "_add")
                b += 1
        if "last_conv" in weights:
            h = tf.nn.relu6(bn(conv(h, "last_conv"), "last_bn"))
        part = deconv(h, "part_pred", "pose/part_pred/block4")
        deconv(h, "locref_pred", "pose/locref_pred/block4")   # second-to-last node
        tf.sigmoid(part, name="Sigmoid")                        # last node
    return g.as_graph_def()


def pose_cfg(steps: int) -> dict:
    import dataset

    names = list(dataset.BODYPARTS)
    return {
        "all_joints": [[i] for i in range(len(names))],
        "all_joints_names": names,
        "num_joints": len(names),
        "dataset_type": "imgaug",
        "net_type": "mobilenet_v2_0.35",
        "init_weights": f"snapshot-{steps}",
        "location_refinement": True,
        "locref_huber_loss": True,
        "locref_loss_weight": 0.05,
        "locref_stdev": 7.2801,
        "pos_dist_thresh": 17,
        "stride": 8.0,
        "global_scale": 1.0,
        "mean_pixel": [127.5, 127.5, 127.5],
        "weigh_part_predictions": False,
        "intermediate_supervision": False,
        "batch_size": 1,
        "note": "rtpose openfield model (examples/train_openfield); scaling x/127.5-1 is inside the graph",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keras", type=Path, default=HERE / "out" / "final.keras")
    p.add_argument("--out", type=Path, default=HERE / "dlc-exported-openfield-mnv2")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import yaml

    import dataset

    model = tf.keras.models.load_model(args.keras, compile=False)
    info_path = args.keras.parent / "train_info.json"
    steps = json.loads(info_path.read_text())["steps"] if info_path.exists() else 0
    gd = build_graph(model, tf)
    nodes = [n.name for n in gd.node]
    assert nodes[0] == "Placeholder" and nodes[-2:] == ["pose/locref_pred/block4/BiasAdd", "Sigmoid"], nodes[-3:]

    _, val = dataset.split(dataset.load_labels())
    img = dataset.read_rgb(val[0].name).astype(np.float32)[None]
    with tf.Graph().as_default() as g2:
        tf.graph_util.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=g2) as sess:
            s_pb, l_pb = sess.run(["Sigmoid:0", "pose/locref_pred/block4/BiasAdd:0"], {"Placeholder:0": img})
    s_k, l_k = (np.asarray(a) for a in model(img, training=False))
    print(f"frozen graph vs Keras on {val[0].name}: max |d score| {np.abs(s_pb - s_k).max():.2e}, "
          f"max |d locref| {np.abs(l_pb - l_k).max():.2e}")

    args.out.mkdir(parents=True, exist_ok=True)
    pb = args.out / f"snapshot-{steps}.pb"
    pb.write_bytes(gd.SerializeToString())
    with open(args.out / "pose_cfg.yaml", "w") as f:
        yaml.safe_dump(pose_cfg(steps), f, sort_keys=True)
    print(f"wrote {args.out}: {pb.name} ({pb.stat().st_size / 1e6:.2f} MB), pose_cfg.yaml")


if __name__ == "__main__":
    main()
