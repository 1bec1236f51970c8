"""Tiny DeepLabCut-format exported models, built the way DeepLabCut's TF code builds them.

``make_dlc_export_folder`` writes what ``deeplabcut.export_model`` writes: a
folder with ``pose_cfg.yaml`` and a frozen graph ``snapshot-<iter>.pb`` whose
input is ``Placeholder`` (float32 ``[None, None, None, 3]``, RGB 0-255, mean
subtracted inside the graph by the ``img_mean`` constant) and whose outputs are
``Sigmoid`` (score maps) and ``pose/locref_pred/block4/BiasAdd`` (offsets).

The graphs use raw ``tf.compat.v1`` ops (``tf_slim`` does not import on TF 2.21)
but the same op patterns tf-slim puts in a real export:

* ``resnet``: ResNet-v1 style. ``conv2d_same`` (explicit ``Pad`` + VALID conv
  for strided convolutions), fused batch norm in inference mode (weights without
  bias, ``FusedBatchNormV3``), ReLU, SAME 3x3 max pool, bottleneck units whose
  strided unit uses the kernel-1 stride-2 SAME ``MaxPool`` shortcut
  (``resnet_utils.subsample``), and an atrous block (rate 2, one unit with a
  dilated ``Conv2D``, one with ``SpaceToBatchND``/``BatchToSpaceND`` as
  ``tf.nn.atrous_conv2d`` emits).
* ``mobilenet``: MobileNetV2 style. 3x3 stride-2 conv, inverted residual units
  (1x1 expand, ``DepthwiseConv2dNative`` 3x3, 1x1 linear projection), batch norm,
  ReLU6, residual ``AddV2`` where stride is 1 and depth is kept.
* ``mobilenet-trainbn``: the same with every batch norm in training mode
  (``FusedBatchNormV3``, ``is_training=True``, empty mean/variance inputs), as
  DeepLabCut's own MobileNetV2 builder freezes it: each batch norm normalises
  with the statistics of the tensor it processes, so in a batch the frames
  change each other's outputs unless the exporter rewrites it per frame.

Both end in DeepLabCut's head: ``conv2d_transpose`` (kernel 3, stride 2, SAME,
dynamic output shape, bias) to K score maps (``pose/part_pred/block4``) and to 2K
offsets (``pose/locref_pred/block4``), then ``Sigmoid`` on the score maps.

Node order suits DeepLabCut-Live: the first node is ``Placeholder`` and the last
two are ``pose/locref_pred/block4/BiasAdd`` then ``Sigmoid``. With
``concat_output="pose"`` the graph instead ends in ``concat_1`` like a
``TFGPUinference=True`` export (argmax and offsets inside the graph); with
``concat_output="maps"`` it ends in one channel concatenation of score maps and
offsets.

Weights are seeded and batch-norm statistics are calibrated on a synthetic frame
(like a trained net's moving averages), so activations stay in a realistic range
and score maps have distinct peaks. Channel counts are tiny: a graph builds,
freezes and runs in well under a second.

This is a test helper; the benchmarking code imports it too
(``sys.path.insert(0, "tests")``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

DEFAULT_BODYPARTS = ("snout", "leftear", "rightear", "tailbase")
BACKBONES = ("resnet", "mobilenet", "mobilenet-trainbn")
MEAN_PIXEL = (123.68, 116.779, 103.939)
SCOREMAP_NODE = "Sigmoid"
LOCREF_NODE = "pose/locref_pred/block4/BiasAdd"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf.compat.v1


class _Builder:
    """Creates seeded weights as frozen variables (``Const`` + ``<name>/read`` ``Identity``, as
    ``convert_variables_to_constants`` leaves them) and batch norms.

    With ``stats=None`` (calibration pass) every batch norm normalises with its input's own
    moments and records them; the final pass uses the recorded moments as moving averages.
    Both passes draw the same random weights in the same order.
    """

    def __init__(self, tf1, seed: int, stats: list | None = None, training_bn: bool = False):
        self.tf1 = tf1
        self.rng = np.random.default_rng(seed)
        self.stats = stats
        self.training_bn = training_bn
        self.moments: list = []  # calibration pass: (mean, variance) tensors in creation order

    def var(self, name: str, value: np.ndarray):
        tf1 = self.tf1
        const = tf1.constant(np.asarray(value, dtype=np.float32), name=name)
        return tf1.identity(const, name=f"{name}/read")

    def weights(self, shape) -> np.ndarray:
        fan_in = int(np.prod(shape[:-1]))
        return self.rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)

    def batch_norm(self, x, scope: str):
        tf1 = self.tf1
        depth = int(x.shape[-1])
        with tf1.variable_scope(scope):
            gamma = self.var("gamma", 1.0 + 0.1 * self.rng.standard_normal(depth))
            beta = self.var("beta", 0.1 * self.rng.standard_normal(depth))
            if self.training_bn:
                # tf-slim's batch_norm(fused=True, is_training=True), as DeepLabCut's MobileNetV2 builder
                # freezes it: no mean/variance inputs (empty constants), statistics of the tensor itself.
                y, _, _ = tf1.nn.fused_batch_norm(x, gamma, beta, epsilon=1e-3, is_training=True,
                                                  name="FusedBatchNormV3")
                return y
            if self.stats is None:
                mean, variance = tf1.nn.moments(x, axes=[0, 1, 2])
                # Floor relative to the layer's typical variance: a near-constant channel is not
                # blown up tenfold (a trained net's moving variance spans many images, not one frame).
                variance = variance + 0.1 * tf1.reduce_mean(variance) + 1e-2
                self.moments.append((mean, variance))
            else:
                batch_mean, batch_variance = self.stats[len(self.moments)]
                self.moments.append(None)
                mean = self.var("moving_mean", batch_mean)
                variance = self.var("moving_variance", batch_variance)
            y, _, _ = tf1.nn.fused_batch_norm(x, gamma, beta, mean=mean, variance=variance, epsilon=1e-3,
                                              is_training=False, name="FusedBatchNormV3")
        return y

    def conv(self, x, depth: int, kernel: int, scope: str, *, stride: int = 1, rate: int = 1,
             padding: str = "SAME", activation="relu", normalize: bool = True):
        """slim.conv2d: weights (no bias when batch-normed), BN, activation."""
        tf1 = self.tf1
        with tf1.variable_scope(scope):
            w = self.var("weights", self.weights((kernel, kernel, int(x.shape[-1]), depth)))
            y = tf1.nn.conv2d(x, w, strides=[1, stride, stride, 1], padding=padding,
                              dilations=[1, rate, rate, 1], name="Conv2D")
            if normalize:
                y = self.batch_norm(y, "BatchNorm")
            else:
                y = tf1.nn.bias_add(y, self.var("biases", 0.1 * self.rng.standard_normal(depth)))
        return self._activate(y, activation, scope)

    def conv_same(self, x, depth: int, kernel: int, stride: int, scope: str, activation="relu"):
        """resnet_utils.conv2d_same: explicit symmetric padding then VALID when strided."""
        if stride == 1:
            return self.conv(x, depth, kernel, scope, activation=activation)
        pad_total = kernel - 1
        pad_beg = pad_total // 2
        x = self.tf1.pad(x, [[0, 0], [pad_beg, pad_total - pad_beg], [pad_beg, pad_total - pad_beg], [0, 0]])
        return self.conv(x, depth, kernel, scope, stride=stride, padding="VALID", activation=activation)

    def atrous_conv(self, x, depth: int, rate: int, scope: str):
        """tf.nn.atrous_conv2d: SpaceToBatchND -> Conv2D -> BatchToSpaceND, then BN + ReLU."""
        tf1 = self.tf1
        with tf1.variable_scope(scope):
            w = self.var("weights", self.weights((3, 3, int(x.shape[-1]), depth)))
            y = tf1.nn.atrous_conv2d(x, w, rate=rate, padding="SAME")
            y = self.batch_norm(y, "BatchNorm")
        return tf1.nn.relu(y)

    def depthwise(self, x, scope: str, *, stride: int = 1, activation="relu6"):
        tf1 = self.tf1
        with tf1.variable_scope(scope):
            w = self.var("depthwise_weights", self.rng.normal(0.0, np.sqrt(2.0 / 9), (3, 3, int(x.shape[-1]), 1)))
            y = tf1.nn.depthwise_conv2d(x, w, strides=[1, stride, stride, 1], padding="SAME", name="depthwise")
            y = self.batch_norm(y, "BatchNorm")
        return self._activate(y, activation, scope)

    def _activate(self, y, activation, scope):
        tf1 = self.tf1
        if activation == "relu":
            return tf1.nn.relu(y, name=f"{scope}/Relu")
        if activation == "relu6":
            return tf1.nn.relu6(y, name=f"{scope}/Relu6")
        return y

    def deconv(self, x, num_outputs: int, scope: str, logit_scale: float):
        """slim.conv2d_transpose(kernel 3, stride 2, SAME) with bias, dynamic output shape."""
        tf1 = self.tf1
        with tf1.variable_scope(scope):
            depth_in = int(x.shape[-1])
            w = self.var("weights", self.rng.normal(0.0, logit_scale / np.sqrt(9 * depth_in / 4),
                                                    (3, 3, num_outputs, depth_in)))
            b = self.var("biases", 0.1 * self.rng.standard_normal(num_outputs))
            shape = tf1.shape(x)
            out_shape = tf1.stack([shape[0], shape[1] * 2, shape[2] * 2, num_outputs])
            y = tf1.nn.conv2d_transpose(x, w, out_shape, strides=[1, 2, 2, 1], padding="SAME",
                                        name="conv2d_transpose")
            return tf1.nn.bias_add(y, b, name="BiasAdd")


def _resnet(b: _Builder, x, output_stride: int):
    tf1 = b.tf1
    with tf1.variable_scope("resnet_v1_50"):
        net = b.conv_same(x, 8, 7, 2, "conv1")
        net = tf1.nn.max_pool2d(net, ksize=3, strides=2, padding="SAME", name="pool1/MaxPool")
        current = 4
        depth_in = 8
        blocks = []
        depth = 16
        while current < output_stride:
            blocks.append(depth)
            current *= 2
            depth = min(depth * 2, 32)
        for i, depth in enumerate(blocks, start=1):
            with tf1.variable_scope(f"block{i}"):
                net = _bottleneck(b, net, depth, depth_in, stride=1, scope="unit_1/bottleneck_v1")
                # The strided unit keeps the depth, so its shortcut is subsample():
                # MaxPool kernel 1, stride 2, SAME, the pattern behind the ORT padding bug.
                net = _bottleneck(b, net, depth, depth, stride=2, scope="unit_2/bottleneck_v1")
                depth_in = depth
        with tf1.variable_scope(f"block{len(blocks) + 1}"):
            net = _bottleneck(b, net, 32, depth_in, stride=1, rate=2, scope="unit_1/bottleneck_v1")
            net = _bottleneck(b, net, 32, 32, stride=1, rate=2, scope="unit_2/bottleneck_v1", space_to_batch=True)
    return net


def _bottleneck(b: _Builder, x, depth: int, depth_in: int, *, stride: int, scope: str, rate: int = 1,
                space_to_batch: bool = False):
    tf1 = b.tf1
    with tf1.variable_scope(scope):
        if depth == depth_in:
            if stride == 1:
                shortcut = x
            else:
                shortcut = tf1.nn.max_pool2d(x, ksize=1, strides=stride, padding="SAME", name="shortcut/MaxPool")
        else:
            shortcut = b.conv(x, depth, 1, "shortcut", stride=stride, activation=None)
        residual = b.conv(x, depth // 4, 1, "conv1")
        if space_to_batch:
            residual = b.atrous_conv(residual, depth // 4, rate, "conv2")
        elif rate > 1:
            residual = b.conv(residual, depth // 4, 3, "conv2", rate=rate)
        else:
            residual = b.conv_same(residual, depth // 4, 3, stride, "conv2")
        residual = b.conv(residual, depth, 1, "conv3", activation=None)
        return tf1.nn.relu(shortcut + residual, name="Relu")


def _mobilenet(b: _Builder, x, output_stride: int):
    tf1 = b.tf1
    with tf1.variable_scope("MobilenetV2"):
        net = b.conv(x, 8, 3, "Conv", stride=2, activation="relu6")
        with tf1.variable_scope("expanded_conv"):  # first unit: no expansion
            net = b.depthwise(net, "depthwise")
            net = b.conv(net, 8, 1, "project", activation=None)
        current = 2
        depth_in = 8
        unit = 1
        depth = 8
        while current < output_stride:
            depth = min(depth * 2, 24)
            for stride in (2, 1):
                with tf1.variable_scope(f"expanded_conv_{unit}"):
                    y = b.conv(net, depth_in * 4, 1, "expand", activation="relu6")
                    y = b.depthwise(y, "depthwise", stride=stride)
                    y = b.conv(y, depth, 1, "project", activation=None)
                    net = tf1.add(net, y, name="add") if stride == 1 and depth == depth_in else y
                depth_in = depth
                unit += 1
            current *= 2
        net = b.conv(net, 32, 1, "Conv_1", activation="relu6")
    return net


def _calibration_frame(height: int = 96, width: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    grey = 120 + 60 * np.sin(xx / 11.0) * np.cos(yy / 7.0) + 40 * np.exp(-((xx - 70) ** 2 + (yy - 40) ** 2) / 300)
    rgb = np.stack([grey, grey * 0.9 + 10, grey * 0.8 + 20], axis=-1)
    return np.clip(rgb, 0, 255)[None].astype(np.float32)


def build_dlc_graph_def(backbone: str = "resnet", num_joints: int = 4, stride: int = 8, seed: int = 0,
                        concat_output: bool | str = False, location_refinement: bool = True,
                        locref_stdev: float = 7.2801):
    """Build, calibrate and freeze one graph; returns (GraphDef, output node names)."""
    tf1 = _tf()
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, not {backbone!r}")
    if stride not in (4, 8, 16):
        raise ValueError("stride must be 4, 8 or 16")
    if concat_output is True:
        concat_output = "pose"
    if concat_output not in (False, "pose", "maps"):
        raise ValueError("concat_output must be False, True/'pose' or 'maps'")
    # Pass 1: batch norms normalise with their own input moments on a calibration frame.
    graph, inputs, builder, _ = _build(tf1, backbone, num_joints, stride, seed, concat_output,
                                       location_refinement, locref_stdev, stats=None)
    with tf1.Session(graph=graph) as sess:
        stats = sess.run(builder.moments, {inputs: _calibration_frame()})
    # Pass 2: the same weights, the measured moments frozen in as moving averages.
    graph, _, _, outputs = _build(tf1, backbone, num_joints, stride, seed, concat_output,
                                  location_refinement, locref_stdev, stats=stats)
    frozen = tf1.graph_util.extract_sub_graph(graph.as_graph_def(), outputs)
    return frozen, outputs


def _build(tf1, backbone, num_joints, stride, seed, concat_output, location_refinement, locref_stdev, stats):
    graph = tf1.Graph()
    with graph.as_default():
        b = _Builder(tf1, seed, stats, training_bn=backbone == "mobilenet-trainbn")
        inputs = tf1.placeholder(tf1.float32, shape=[None, None, None, 3], name="Placeholder")
        mean = tf1.constant(MEAN_PIXEL, dtype=tf1.float32, shape=[1, 1, 1, 3], name="img_mean")
        centered = inputs - mean
        features = (_resnet if backbone == "resnet" else _mobilenet)(b, centered, stride * 2)
        with tf1.variable_scope("pose"):
            part_pred = b.deconv(features, num_joints, "part_pred/block4", logit_scale=0.6)
            locref = b.deconv(features, 2 * num_joints, "locref_pred/block4", logit_scale=0.15) \
                if location_refinement else None
        probs = tf1.sigmoid(part_pred, name="Sigmoid")
        if not location_refinement:
            outputs = ["Sigmoid", "pose/part_pred/block4/BiasAdd"]
        elif concat_output == "pose":
            _tfgpu_pose(tf1, probs, locref, stride, locref_stdev)
            outputs = ["concat_1"]
        elif concat_output == "maps":
            tf1.concat([probs, locref], axis=3, name="concat")
            outputs = ["concat"]
        else:
            outputs = [SCOREMAP_NODE, LOCREF_NODE]
    return graph, inputs, b, outputs


def _tfgpu_pose(tf1, probs, locref, stride, locref_stdev):
    """DeepLabCut's in-graph argmax (``BasePoseNet.inference``, batch size None); ends in ``concat_1``."""
    shape = tf1.shape(probs)
    locref = tf1.reshape(locref, (shape[0], shape[1], shape[2], shape[3], 2))
    locref = tf1.transpose(locref, perm=[1, 2, 0, 3, 4])
    probs = tf1.transpose(probs, perm=[1, 2, 0, 3])
    shape = tf1.shape(probs)
    locref = tf1.reshape(locref, (shape[0] * shape[1], -1, 2))
    probs = tf1.reshape(probs, (shape[0] * shape[1], -1))
    maxloc = tf1.argmax(probs, axis=0)
    loc = tf1.unravel_index(maxloc, (tf1.cast(shape[0], tf1.int64), tf1.cast(shape[1], tf1.int64)))
    maxloc = tf1.reshape(maxloc, (1, -1))
    joints = tf1.reshape(tf1.range(0, tf1.cast(shape[2] * shape[3], dtype=tf1.int64)), (1, -1))
    indices = tf1.transpose(tf1.concat([maxloc, joints], axis=0))  # -> "concat"
    offset = tf1.gather(tf1.gather_nd(locref, indices), [1, 0], axis=1)
    likelihood = tf1.reshape(tf1.gather_nd(probs, indices), (-1, 1))
    pose = stride * tf1.cast(tf1.transpose(loc), dtype=tf1.float32) + stride * 0.5 + offset * locref_stdev
    return tf1.concat([pose, likelihood], axis=1, name="concat_1")


def pose_cfg(bodyparts, stride: int, location_refinement: bool = True, locref_stdev: float = 7.2801,
             net_type: str = "resnet_50") -> dict:
    """The keys of a DeepLabCut exported ``pose_cfg.yaml`` (a representative subset)."""
    return {
        "all_joints": [[i] for i in range(len(bodyparts))],
        "all_joints_names": list(bodyparts),
        "batch_size": 1,
        "dataset_type": "imgaug",
        "global_scale": 0.8,
        "init_weights": "snapshot-1000",
        "intermediate_supervision": False,
        "location_refinement": location_refinement,
        "locref_huber_loss": True,
        "locref_loss_weight": 0.05,
        "locref_stdev": locref_stdev,
        "mean_pixel": list(MEAN_PIXEL),
        "net_type": net_type,
        "num_joints": len(bodyparts),
        "num_outputs": 1,
        "optimizer": "sgd",
        "scoremap_dir": "test",
        "stride": float(stride),
        "weigh_part_predictions": False,
    }


def make_dlc_export_folder(tmpdir, backbone: str = "resnet", bodyparts=DEFAULT_BODYPARTS, stride: int = 8,
                           seed: int = 0, concat_output: bool | str = False, location_refinement: bool = True,
                           locref_stdev: float = 7.2801) -> Path:
    """Write ``pose_cfg.yaml`` + ``snapshot-1000.pb`` into a new folder under ``tmpdir``; return the folder."""
    bodyparts = tuple(bodyparts)
    graph_def, _ = build_dlc_graph_def(backbone, len(bodyparts), stride, seed, concat_output,
                                       location_refinement, locref_stdev)
    suffix = f"-concat{concat_output if isinstance(concat_output, str) else 'pose'}" if concat_output else ""
    folder = Path(tmpdir) / f"DLC_{backbone}_seed{seed}_stride{stride}{suffix}_exported"
    folder.mkdir(parents=True, exist_ok=False)
    net_type = "resnet_50" if backbone == "resnet" else "mobilenet_v2_0.35"
    cfg = pose_cfg(bodyparts, stride, location_refinement, locref_stdev, net_type)
    (folder / "pose_cfg.yaml").write_text(yaml.safe_dump(cfg, sort_keys=True))
    (folder / "snapshot-1000.pb").write_bytes(graph_def.SerializeToString(deterministic=True))
    return folder
