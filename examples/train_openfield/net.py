"""The bundled model's network: MobileNetV2 (alpha 0.35) backbone at output stride 16
with a DeepLabCut head (transposed convolutions to stride 8: score maps + location
refinement). Built from scratch (no pretrained weights). Needs TensorFlow.

Input: RGB 0-255 float32, any batch/height/width; scaling to [-1, 1] is inside the graph.
"""

from __future__ import annotations

import tensorflow as tf

keras = tf.keras
layers = keras.layers

STRIDE = 8
# (expansion t, channels c, repeats n, stride s) as in MobileNetV2; the last
# stride-2 stage runs at stride 1 so that the backbone's output stride is 16.
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 1), (6, 320, 1, 1)]


def _div8(v: float) -> int:
    new = max(8, int(v + 4) // 8 * 8)
    if new < 0.9 * v:
        new += 8
    return new


def _block(x, t, c, s, name):
    cin = x.shape[-1]
    h = x
    if t != 1:
        h = layers.Conv2D(cin * t, 1, use_bias=False, name=name + "_expand")(h)
        h = layers.BatchNormalization(momentum=0.99, name=name + "_expand_bn")(h)
        h = layers.ReLU(6.0, name=name + "_expand_relu")(h)
    h = layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False, name=name + "_dw")(h)
    h = layers.BatchNormalization(momentum=0.99, name=name + "_dw_bn")(h)
    h = layers.ReLU(6.0, name=name + "_dw_relu")(h)
    h = layers.Conv2D(c, 1, use_bias=False, name=name + "_project")(h)
    h = layers.BatchNormalization(momentum=0.99, name=name + "_project_bn")(h)
    if s == 1 and cin == c:
        h = layers.Add(name=name + "_add")([x, h])
    return h


def build(num_parts: int = 4, alpha: float = 0.35, last_channels: int = 1280):
    """Return (train_model, export_model).

    train_model outputs (scoremap logits, locref); export_model shares its layers
    and outputs ``scoremap`` (sigmoid, (B, h, w, K)) and ``locref`` ((B, h, w, 2K))."""
    inp = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(inp)
    x = layers.Conv2D(_div8(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(momentum=0.99, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    b = 0
    for t, c, n, s in _SETTINGS:
        for i in range(n):
            x = _block(x, t, _div8(c * alpha), s if i == 0 else 1, f"block{b}")
            b += 1
    if last_channels:
        x = layers.Conv2D(last_channels, 1, use_bias=False, name="last_conv")(x)
        x = layers.BatchNormalization(momentum=0.99, name="last_bn")(x)
        x = layers.ReLU(6.0, name="last_relu")(x)
    feat = x
    logits = layers.Conv2DTranspose(num_parts, 3, strides=2, padding="same", name="part_pred")(feat)
    locref = layers.Conv2DTranspose(2 * num_parts, 3, strides=2, padding="same", name="locref_pred")(feat)
    train_model = keras.Model(inp, [logits, locref], name="openfield_mnv2_train")
    score = layers.Activation("sigmoid", name="scoremap")(logits)
    loc = layers.Identity(name="locref")(locref)
    export_model = keras.Model(inp, [score, loc], name="openfield_mnv2")
    return train_model, export_model
