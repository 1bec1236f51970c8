"""Frames into the model input: crop (a view), resize (into a preallocated buffer), dynamic crop.

:class:`FrameLoader` is what the batcher calls for every frame it takes: it
picks the frame's crop box (the static crop, the full frame, or - with dynamic
cropping - the box around the stream's last confident pose), resizes with
``cv2.INTER_LINEAR`` into a preallocated buffer when asked, and hands the
result to the model's ``load_frame`` (colour conversion and cast). The box used
is written into the batch (``PoseBatch.crop_box``); after decoding, the
pipeline calls :meth:`FrameLoader.to_full_frame` (poses back to full-frame
pixels) and :meth:`FrameLoader.observe` (the next dynamic box). The geometry
itself lives in :mod:`rtpose.framing`; nothing here allocates per frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from .errors import ConfigError
from .framing import CropBox, Framing, aligned_box, box_quantum, dynamic_box, resized_size, to_full_frame
from .results import PoseBatch


class FrameLoader:
    """Loads frames of ``width x height`` from ``n_streams`` streams into ``model`` as ``framing`` says.

    Call :meth:`prepare_model` once (it prepares the model for the largest input), then
    :meth:`load` per frame.
    """

    def __init__(self, model, framing: Framing | None, width: int, height: int, n_streams: int):
        self.model = model
        self.framing = framing or Framing()
        self.region = self.framing.region(width, height)
        self.input_width, self.input_height = self.framing.input_size(width, height)
        stride = float(model.metadata.stride)
        if self.input_width < stride or self.input_height < stride:
            raise ConfigError(f"crop {self.region.as_tuple()} and resize {self.framing.resize} give a "
                              f"{self.input_width}x{self.input_height} model input, smaller than the model "
                              f"stride {stride:g}; crop less or resize less")
        self.dynamic = self.framing.dynamic
        if self.dynamic is not None and n_streams > 1:
            raise ConfigError("dynamic cropping follows one animal in one camera; run one camera per process "
                              "(each with its own --dynamic-crop)")
        self.quantum = box_quantum(stride, self.framing.resize)
        self.resize = float(self.framing.resize)
        self._identity = self.framing.crop is None and self.resize == 1.0 and self.dynamic is None
        #: the box each stream's next frame is cropped to (x1, x2, y1, y2)
        self.next_box = np.tile(np.array(self.region.as_tuple(), np.int64), (n_streams, 1))
        self._resized = (np.zeros(self.input_width * self.input_height * 3, np.uint8)
                         if self.resize != 1.0 else None)

    def prepare_model(self, max_batch: int) -> None:
        if self.dynamic is not None:  # the input size changes from frame to frame (GPU: no fixed-shape engine)
            self.model.prepare(max_batch, self.input_height, self.input_width, variable_size=True)
        else:
            self.model.prepare(max_batch, self.input_height, self.input_width)

    def load(self, row: int, stream: int, frame: np.ndarray, box_out: np.ndarray) -> None:
        """Crop/resize ``frame`` into the model's input row ``row``; write the box used to ``box_out``."""
        box = self.next_box[stream]
        box_out[:] = box
        if self._identity:
            self.model.load_frame(row, frame)
            return
        x1, x2, y1, y2 = int(box[0]), int(box[1]), int(box[2]), int(box[3])
        image = frame[y1:y2, x1:x2]
        if self._resized is not None:
            w, h = resized_size(x2 - x1, y2 - y1, self.resize)
            dst = self._resized[: h * w * 3].reshape(h, w, 3)
            cv2.resize(image, (w, h), dst=dst, interpolation=cv2.INTER_LINEAR)
            image = dst
        if self.dynamic is not None:
            self.model.set_input_size(image.shape[0], image.shape[1])
        self.model.load_frame(row, image)

    def to_full_frame(self, batch: PoseBatch, n: int) -> None:
        """Rows ``[:n]`` of ``batch.pose`` from model-input pixels to full-frame pixels."""
        if not self._identity:
            to_full_frame(batch.pose, batch.crop_box, self.resize, n)

    def observe(self, batch: PoseBatch, n: int) -> None:
        """Dynamic cropping: each stream's next box from the full-frame poses of rows ``[:n]``."""
        if self.dynamic is None:
            return
        for i in range(n):
            s = int(batch.stream[i])
            box = dynamic_box(batch.pose[i], self.dynamic.threshold, self.dynamic.margin_px, self.region)
            if box is None:
                box = self.region
            else:
                box = aligned_box(box, self.quantum, self.region)
            self.next_box[s, 0], self.next_box[s, 1] = box.x1, box.x2
            self.next_box[s, 2], self.next_box[s, 3] = box.y1, box.y2


__all__ = ["FrameLoader", "CropBox", "Framing"]
