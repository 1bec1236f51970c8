"""Tiny Keras pose networks and coloured test frames for the exporter tests (needs TensorFlow/Keras)."""

from __future__ import annotations

import numpy as np


def tiny_pose_net(k: int, seed: int, name: str):
    """Three strided 3x3 convolutions (stride 8) then a sigmoid score map (K) and offsets (2K); weighs R, G and
    B differently, so a swapped channel order would show."""
    import keras

    init = keras.initializers.HeNormal(seed=seed)
    inp = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    for _ in range(3):
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", kernel_initializer=init)(x)
    score = keras.layers.Conv2D(k, 1, activation="sigmoid", name="scoremap", kernel_initializer=init)(x)
    locref = keras.layers.Conv2D(2 * k, 1, name="locref", kernel_initializer=init)(x)
    return keras.Model(inp, [score, locref], name=name)


def blob_frames(seed: int, box: tuple[int, int, int, int], colour: tuple[int, int, int], n: int = 3, h: int = 96,
                w: int = 128) -> np.ndarray:
    """``n`` random BGR uint8 frames with a coloured blob at rows ``box[0]:box[1]``, columns ``box[2]:box[3]``."""
    frames = np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    frames[:, box[0]:box[1], box[2]:box[3]] = colour
    return frames
