"""Running a top-down multi-animal model: a detector per frame, then the pose model on every crop at once.

A top-down rtpose file (``rtpose export`` of a DeepLabCut 3 ``method: td`` model) is ONE ONNX file with two
disjoint sub-graphs (ONNX Runtime would run every node of a graph whatever outputs are asked for):

* the detector stage: input ``image`` ``(1, H, W, 3)`` float32 RGB 0-255, one whole frame; outputs ``boxes``
  ``(D, 4)`` xyxy in frame pixels and ``box_scores`` ``(D,)``, score-descending (normalisation, resizing, box
  decoding, NMS and the detector's own score threshold are inside the graph);
* the pose stage: input ``crops`` ``(N, h, w, 3)`` float32 RGB 0-255; outputs ``scoremap`` ``(N, h', w', K)``
  and ``locref`` ``(N, h', w', 2K)``, the single-animal DeepLabCut 3 heatmap-head contract.

:func:`split_stages` cuts the file into the two graphs (nodes and initializers reachable from each input,
with the ``onnx`` package, imported only here) and :class:`TopDownModel` runs each in its own ONNX Runtime
session with rtpose's settings (:func:`rtpose.model.session_options`). Per batch of frames
(:class:`TopDownStep`, which the pipeline calls where it runs a bottom-up model's assembly):

1. ``detect``: the detector stage once per frame; DeepLabCut's box selection
   (:func:`~rtpose.multianimal.topdown.select_boxes`);
2. ``crop``: DeepLabCut's ``top_down_crop`` of every kept box from the frame (uint8, bit-exact,
   :mod:`rtpose.multianimal.topdown`) into one preallocated crop batch;
3. ``run_pose``: ALL crops of the batch through the pose stage in one inference call;
4. each crop decoded by rtpose's single-animal decoder (:class:`rtpose.decode.Decoder`) and mapped back to
   the frame (``x * scale + offset``), animal ``j`` of frame ``i`` into row ``i``'s flat pose in detection
   order; then identity slots exactly as for bottom-up models (:class:`~.live.IdentitySlots`).

The cost of each step is summed per frame (``TopDownStep.summary``: detector, crop, pose, decode, tracking).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from ..decode import Decoder
from ..decode import warmup as warmup_decode
from ..errors import ConfigError, MissingDependencyError, ModelError, ModelInputError
from ..metadata import PREFIX, ModelMetadata, read_props
from ..results import PoseBatch
from .live import IdentitySlots
from .topdown import crop_geometry, crop_into, scratch_size, select_boxes, to_frame

__all__ = ["TopDownModel", "TopDownStep", "is_topdown_file", "split_stages"]

#: The metadata key that marks a top-down file (``ModelMetadata.topdown``).
TOPDOWN_KEY = PREFIX + "multianimal.topdown"


# -- the file ------------------------------------------------------------------

def is_topdown_file(path: str | os.PathLike) -> bool:
    """Whether an rtpose ONNX file holds a top-down model (a detector stage and a pose stage). Cheap: reads only
    the file's metadata (:func:`rtpose.metadata.read_props`), so :func:`rtpose.model.load_model` can tell before
    creating any session."""
    return TOPDOWN_KEY in read_props(path)


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - onnx is a runtime dependency
        raise MissingDependencyError("top-down models need the `onnx` package to split their two stages: "
                                     "pip install 'onnx>=1.17,<1.24'") from exc
    return onnx


def _subgraph_inputs(node) -> set[str]:
    """Names a node's sub-graphs (If/Loop/Scan bodies) take from the enclosing graph."""
    names: set[str] = set()
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            produced = {i.name for i in g.input} | {i.name for i in g.initializer}
            for n in g.node:
                produced.update(n.output)
            for n in g.node:
                names.update(x for x in list(n.input) + sorted(_subgraph_inputs(n)) if x and x not in produced)
    return names


def split_stages(model, inputs: Sequence[str]) -> dict:
    """Split an ONNX ``ModelProto`` into one model per graph input in ``inputs``: the nodes reachable from
    that input (and the constant-only nodes and initializers they use), with the graph outputs they make.
    Raises :class:`ModelError` when a node depends on two of the inputs (the stages must be disjoint)."""
    onnx = _import_onnx()
    graph = model.graph
    nodes = list(graph.node)
    uses = [[x for x in list(n.input) + sorted(_subgraph_inputs(n)) if x] for n in nodes]
    stage_of: list[str | None] = [None] * len(nodes)
    for name in inputs:  # forward: what each input reaches
        reached = {name}
        changed = True
        while changed:
            changed = False
            for i, n in enumerate(nodes):
                if any(u in reached for u in uses[i]):
                    if stage_of[i] not in (None, name):
                        raise ModelError(f"node {n.name or n.op_type} depends on both {stage_of[i]!r} and {name!r}: "
                                         "a top-down file needs two disjoint stages; re-export it with `rtpose export`")
                    if stage_of[i] is None:
                        stage_of[i] = name
                        reached.update(o for o in n.output if o)
                        changed = True
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    initializers = {t.name: t for t in graph.initializer}
    stages = {}
    for name in inputs:
        keep = {i for i, s in enumerate(stage_of) if s == name}
        todo = list(keep)
        while todo:  # backward: constant-only nodes feeding the stage (Constant, shape arithmetic on weights)
            i = todo.pop()
            for u in uses[i]:
                j = producer.get(u)
                if j is not None and j not in keep and stage_of[j] is None:
                    keep.add(j)
                    todo.append(j)
        order = sorted(keep)  # the original (topological) order
        used = {u for i in order for u in uses[i]}
        made = {o for i in order for o in nodes[i].output}
        sub = onnx.helper.make_graph(
            [nodes[i] for i in order], f"{graph.name}/{name}", [i for i in graph.input if i.name == name],
            [o for o in graph.output if o.name in made],
            initializer=[initializers[u] for u in sorted(used) if u in initializers],
            value_info=[v for v in graph.value_info if v.name in made])
        stage = onnx.helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
        stage.functions.extend(model.functions)
        stages[name] = stage
    return stages


class TopDownModel:
    """A top-down rtpose file on ONNX Runtime: its detector and pose stages in two sessions (see the module
    docstring). The pipeline uses it like :class:`rtpose.model.OnnxPoseModel` (``prepare``, ``load_frame``,
    ``input_buffer``, ``metadata``, ``provider``, ``settings``, ``execution()``) and runs it through
    :class:`TopDownStep`.

    Providers: CPU, or CUDA (TensorRT is not used for top-down files yet: asked for, the next provider runs
    and :attr:`choice` says why). ``gpu`` options of :class:`~rtpose.model.OnnxPoseModel` other than
    ``device_id`` are accepted and ignored (CUDA graphs need fixed shapes; the crop count changes per batch).
    """

    def __init__(self, path: str | os.PathLike, *, providers: Sequence[str] | None = None, threads: int | None = None,
                 spinning: bool | None = None, device_id: int = 0, log: Callable[[str], None] | None = None,
                 **_gpu_options):
        from ..model import DEFAULT_SPINNING, default_threads, session_options
        from ..providers import (CPU, GPU_PROVIDERS, TENSORRT, ProviderChoice, captured_stderr, choose_providers,
                                 cuda_options, fallback_reason, import_onnxruntime)

        if threads is not None and not (isinstance(threads, int) and threads >= 1):
            raise ConfigError(f"threads must be None (all usable cores) or a whole number >= 1, got {threads!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist")
        ort = import_onnxruntime()
        onnx = _import_onnx()
        try:
            proto = onnx.load(str(self.path))
        except Exception as exc:  # onnx's own DecodeError
            raise ModelError(f"{self.path} is not a loadable ONNX model ({exc}); re-export it with `rtpose export`") from exc
        props = {p.key: p.value for p in proto.metadata_props}
        self.metadata = meta = ModelMetadata.from_props(props, source=str(self.path))
        td = meta.topdown
        if td is None:
            raise ModelError(f"{self.path} is not a top-down model; load it with rtpose.model.load_model")
        graph_inputs = [i.name for i in proto.graph.input]
        missing = [n for n in (td.image_input, td.crops_input) if n not in graph_inputs]
        if missing:
            raise ModelError(f"{self.path}: the metadata names inputs {missing} but the graph has {graph_inputs}; "
                             "re-export the model")
        stages = split_stages(proto, [td.image_input, td.crops_input])
        del proto
        self.threads = threads or default_threads()
        self.spinning = DEFAULT_SPINNING if spinning is None else bool(spinning)
        self.device_id = int(device_id)
        auto = not providers or list(providers) == ["auto"]
        wanted = choose_providers(providers)
        provider_list = [p for p in wanted if p != TENSORRT] or [CPU]
        note = "TensorRT is not used for top-down models yet" if TENSORRT in wanted else ""

        def session(stage):
            data = stage.SerializeToString()
            captured: list[str] = []
            try:
                with captured_stderr(captured):
                    s = ort.InferenceSession(
                        data, sess_options=session_options(ort, self.threads, self.spinning), providers=provider_list,
                        provider_options=[cuda_options(device_id=self.device_id) if p == "CUDAExecutionProvider"
                                          else {} for p in provider_list])
            except Exception as exc:  # ORT's own exception types
                raise ModelError(f"{self.path}: ONNX Runtime cannot load the {stage.graph.name} stage ({exc}); "
                                 "re-export the model with `rtpose export`") from exc
            return s, "".join(captured)

        self.detector, det_log = session(stages[td.image_input])
        self.pose, pose_log = session(stages[td.crops_input])
        self.provider = self.pose.get_providers()[0]
        reason = fallback_reason(det_log + pose_log, provider_list, self.provider) or note
        self.choice = ProviderChoice(tuple(wanted), self.provider, auto, reason)
        if not auto and self.provider not in wanted:
            raise ModelError(f"asked for {wanted[0]} but ONNX Runtime fell back to {self.provider} ({reason})")
        self.on_gpu = self.provider in GPU_PROVIDERS
        self._ort = ort
        self._log = log
        self._check_stages()
        self.decodes_in_graph = False
        self.input_buffer = np.zeros((0, 0, 0, 3), np.float32)
        self._max_batch = 0
        self._frame_hw: tuple[int, int] | None = None
        self._swap_rb = meta.input_color == "RGB"
        self.settings = (f"{self.threads} CPU thread{'s' if self.threads != 1 else ''}, spinning "
                         f"{'on' if self.spinning else 'off'}" if not self.on_gpu else self.provider)
        self.settings += f"; top-down: detector per frame, up to {td.max_individuals} crops of " \
                         f"{td.crop_width}x{td.crop_height} per frame in one pose call"

    # -- checks ------------------------------------------------------------
    def _check_stages(self) -> None:
        meta, td = self.metadata, self.metadata.topdown
        det_in = {i.name: i for i in self.detector.get_inputs()}
        det_out = {o.name for o in self.detector.get_outputs()}
        pose_in = {i.name: i for i in self.pose.get_inputs()}
        pose_out = {o.name for o in self.pose.get_outputs()}
        image = det_in.get(td.image_input)
        if image is None or len(image.shape) != 4 or image.type != "tensor(float)":
            raise ModelError(f"{self.path}: the detector stage needs a float32 (1, H, W, 3) input {td.image_input!r}; "
                             "re-export the model")
        need = [n for n in (td.boxes_output, td.scores_output) if n not in det_out]
        if need:
            raise ModelError(f"{self.path}: the detector stage lacks outputs {need} (it has {sorted(det_out)}); "
                             "re-export the model")
        crops = pose_in[td.crops_input]
        if len(crops.shape) != 4 or crops.type != "tensor(float)":
            raise ModelError(f"{self.path}: the pose stage needs a float32 (N, h, w, 3) input {td.crops_input!r}")
        fixed = [d for d in crops.shape[1:3] if isinstance(d, int)]
        if fixed and tuple(crops.shape[1:3]) != (td.crop_height, td.crop_width):
            raise ModelError(f"{self.path}: the pose stage takes {crops.shape[2]}x{crops.shape[1]} crops but the "
                             f"metadata says {td.crop_width}x{td.crop_height}; re-export the model")
        self._pose_outputs = [td.scoremap_output] + ([td.locref_output] if meta.location_refinement else [])
        need = [n for n in self._pose_outputs if n not in pose_out]
        if need:
            raise ModelError(f"{self.path}: the pose stage lacks outputs {need} (it has {sorted(pose_out)})")
        from ..model import check_map_geometry, check_score_range

        probe = np.random.default_rng(0).integers(0, 256, (1, td.crop_height, td.crop_width, 3)).astype(np.float32)
        try:
            outs = self.pose.run(self._pose_outputs, {td.crops_input: probe})
        except Exception as exc:  # ORT's own types
            raise ModelError(f"{self.path}: the pose stage fails on a test crop ({exc}); re-export the model") from exc
        k = meta.num_bodyparts
        sc = outs[0]
        if sc.ndim != 4 or sc.shape[3] != k:
            raise ModelError(f"{self.path}: pose score maps have shape {sc.shape}, expected (N, h, w, {k})")
        h, w = sc.shape[1:3]
        check_map_geometry(self.path, meta.stride, td.crop_height, td.crop_width, h, w)
        if not meta.clip_scores:
            check_score_range(self.path, sc)
        if meta.location_refinement and outs[1].shape != (1, h, w, 2 * k):
            raise ModelError(f"{self.path}: pose offsets have shape {outs[1].shape}, expected (N, {h}, {w}, {2 * k})")
        self.map_shape = (h, w)

    # -- what the pipeline calls ---------------------------------------------
    def prepare(self, max_batch: int, height: int, width: int, *, variable_size: bool = False) -> None:
        """Preallocate everything for batches of up to ``max_batch`` frames of ``width x height``: the frames
        (float32 for the detector, uint8 RGB for the crops), the crop batch, the pose maps, the boxes."""
        if variable_size:
            raise ModelInputError("a top-down model runs on whole frames (or a fixed --crop): dynamic cropping "
                                  "does not apply")
        td, k = self.metadata.topdown, self.metadata.num_bodyparts
        a = td.max_individuals
        self._max_batch = max_batch
        self._frame_hw = (height, width)
        self.input_buffer = np.zeros((max_batch, height, width, 3), np.float32)
        self._frames_u8 = np.zeros((max_batch, height, width, 3), np.uint8)
        n = max_batch * a
        self._crops_u8 = np.zeros((n, td.crop_height, td.crop_width, 3), np.uint8)
        self._crops = np.zeros((n, td.crop_height, td.crop_width, 3), np.float32)
        h, w = self.map_shape
        self._scmap = np.zeros((n, h, w, k), np.float32)
        self._locref = np.zeros((n, h, w, 2 * k), np.float32) if self.metadata.location_refinement else None
        self.boxes = np.zeros((max_batch, a, 4), np.float32)  # kept boxes, xywh, detection order
        self.box_scores = np.zeros((max_batch, a), np.float32)
        self.n_boxes = np.zeros(max_batch, np.int64)
        self.scale = np.ones((n, 2), np.float64)  # per crop: frame = crop * scale + offset
        self.offset = np.zeros((n, 2), np.float64)
        self._scratch = np.zeros(0, np.uint8)  # padded crops: grows to the largest needed, then stays
        self._bindings: dict[int, object] = {}
        self._probe_detector()

    def _probe_detector(self) -> None:
        td = self.metadata.topdown
        try:
            boxes, scores = self.detector.run([td.boxes_output, td.scores_output],
                                              {td.image_input: self.input_buffer[:1]})
        except Exception as exc:  # ORT's own types
            h, w = self._frame_hw
            raise ModelError(f"{self.path}: the detector stage fails on a {w}x{h} frame ({exc}); re-export the "
                             "model with a dynamic frame size or use frames of its size") from exc
        if boxes.ndim != 2 or boxes.shape[1] != 4 or scores.shape != boxes.shape[:1]:
            raise ModelError(f"{self.path}: the detector gives boxes {boxes.shape} and scores {scores.shape}, "
                             "expected (D, 4) and (D,)")

    def set_input_size(self, height: int, width: int) -> None:
        if (height, width) != self._frame_hw:
            raise ModelInputError("a top-down model runs on frames of the prepared size only (no dynamic cropping)")

    def load_frame(self, row: int, frame_bgr: np.ndarray) -> None:
        """Copy one BGR uint8 frame into row ``row``: RGB uint8 (what the crops are cut from, as DeepLabCut
        crops its uint8 image) and float32 (the detector's input)."""
        dst = self._frames_u8[row]
        if frame_bgr.shape != dst.shape:
            raise ModelInputError(f"frame has shape {frame_bgr.shape}, the model was prepared for {dst.shape}")
        if self._swap_rb:
            cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB, dst=dst)
        else:
            np.copyto(dst, frame_bgr)
        np.copyto(self.input_buffer[row], dst, casting="unsafe")

    def detect(self, n: int) -> None:
        """The detector stage on frames ``[:n]``, one call per frame; DeepLabCut's box selection into
        :attr:`boxes` / :attr:`n_boxes`."""
        td = self.metadata.topdown
        name = td.image_input
        outputs = [td.boxes_output, td.scores_output]
        for i in range(n):
            boxes, scores = self.detector.run(outputs, {name: self.input_buffer[i:i + 1]})
            self.n_boxes[i] = select_boxes(boxes, scores, td.max_individuals, td.min_bbox_score, self.boxes[i],
                                           self.box_scores[i])

    def crop(self, n: int) -> int:
        """DeepLabCut's crops of every kept box of frames ``[:n]``, frame by frame in detection order, into the
        crop batch; their scales and offsets into :attr:`scale` / :attr:`offset`. Returns the crop count."""
        td = self.metadata.topdown
        height, width = self._frame_hw
        size = (td.crop_width, td.crop_height)
        c = 0
        for i in range(n):
            frame = self._frames_u8[i]
            for j in range(int(self.n_boxes[i])):
                g = crop_geometry(height, width, self.boxes[i, j], size, td.margin, td.center_padding,
                                  td.with_context)
                need = scratch_size(g)
                if need > self._scratch.size:  # a larger padded crop than any before: grow once
                    self._scratch = np.zeros(need, np.uint8)
                crop_into(frame, g, self._scratch, self._crops_u8[c])
                self.scale[c, 0], self.scale[c, 1] = g.scale_x, g.scale_y
                self.offset[c, 0], self.offset[c, 1] = g.offset_x, g.offset_y
                c += 1
        np.copyto(self._crops[:c], self._crops_u8[:c], casting="unsafe")
        return c

    def run_pose(self, c: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The pose stage on crops ``[:c]`` in one call; returns views of the preallocated score maps
        ``(c, h, w, K)`` and offsets ``(c, h, w, K, 2)``."""
        binding = self._bindings.get(c)
        if binding is None:
            binding = self.pose.io_binding()
            buf = self._crops
            binding.bind_input(self.metadata.topdown.crops_input, "cpu", 0, np.float32, [c, *buf.shape[1:]],
                               buf.ctypes.data)
            outs = [self._scmap] + ([self._locref] if self._locref is not None else [])
            for name, out in zip(self._pose_outputs, outs):
                binding.bind_output(name, "cpu", 0, np.float32, [c, *out.shape[1:]], out.ctypes.data)
            self._bindings[c] = binding
        self.pose.run_with_iobinding(binding)
        k = self.metadata.num_bodyparts
        locref = None
        if self._locref is not None:
            locref = self._locref[:c].reshape(c, *self._locref.shape[1:3], k, 2)
        return self._scmap[:c], locref

    def infer_animals(self, frames_bgr: np.ndarray) -> list[np.ndarray]:
        """Convenience for scripts and tests: each frame's animals ``(found, K, 3)`` in frame pixels, in
        detection order (DeepLabCut's order), no tracking. Prepares as needed."""
        if frames_bgr.ndim != 4 or frames_bgr.shape[3] != 3 or frames_bgr.dtype != np.uint8:
            raise ModelInputError(f"expected frames as (batch, height, width, 3) uint8 BGR, got {frames_bgr.shape} "
                                  f"{frames_bgr.dtype}")
        b, h, w, _ = frames_bgr.shape
        if self._max_batch < b or self._frame_hw != (h, w):
            self.prepare(b, h, w)
        for i in range(b):
            self.load_frame(i, frames_bgr[i])
        self.detect(b)
        c = self.crop(b)
        poses = np.full((max(c, 1), self.metadata.num_bodyparts, 3), np.nan)
        if c:
            warmup_decode()
            scmap, locref = self.run_pose(c)
            meta = self.metadata
            Decoder(meta.stride, meta.locref_stdev, meta.num_bodyparts, c,
                    clip_scores=meta.clip_scores).decode(scmap, locref, poses, c)
        out, first = [], 0
        scratch = np.zeros((self.metadata.num_bodyparts, 2), np.float32)
        for i in range(b):
            found = int(self.n_boxes[i])
            animals = np.empty((found, self.metadata.num_bodyparts, 3))
            for j in range(found):
                to_frame(poses[first + j], self.scale[first + j], self.offset[first + j], scratch, animals[j])
            out.append(animals)
            first += found
        return out

    def execution(self) -> dict:
        """How the model runs, for the run summary and the recording's settings (JSON-able)."""
        return {**self.choice.to_json(), "precision": self.metadata.extra.get("precision", "fp32"),
                "cuda_graph": False, "cuda_graph_note": "top-down: the crop count changes per batch",
                "io_binding": "host", "readback": "", "pinned_host_memory": False, "pinned_note": "",
                "decode_in_graph": False, "tensorrt_engine": "", "build_s": None, "topdown": True}


class TopDownStep(IdentitySlots):
    """The pipeline's step for a top-down model: detector, crops, pose model, decode into ``batch.pose``,
    then identity slots (:class:`~.live.IdentitySlots`, as for bottom-up models). Costs are summed per frame.

    Args:
        model: the :class:`TopDownModel`, prepared for ``capacity`` frames.
        the rest: as :class:`~.live.IdentitySlots`.
    """

    def __init__(self, model: TopDownModel, n_streams: int, capacity: int, clock: Callable[[], int],
                 tracker_options: dict | None = None):
        meta = model.metadata
        warmup_decode()  # compile (or load cached) kernels before the first frame
        super().__init__(meta.layout, n_streams, capacity, clock, tracker_options)
        self.model = model
        a, k = meta.layout.n_animals, meta.num_bodyparts
        if meta.topdown.max_individuals > a:
            raise ModelError(f"{model.path}: the top-down metadata keeps up to {meta.topdown.max_individuals} "
                             f"animals but the layout has {a} individuals; re-export the model")
        self.decoder = Decoder(meta.stride, meta.locref_stdev, k, capacity * meta.topdown.max_individuals,
                               clip_scores=meta.clip_scores)
        self._crop_poses = np.zeros((capacity * meta.topdown.max_individuals, k, 3))
        self._xy32 = np.zeros((k, 2), np.float32)
        self.crops = 0
        self.detector_ns = self.crop_ns = self.pose_ns = self.decode_ns = 0

    def infer(self, batch: PoseBatch, n: int) -> None:
        """Detector, crops and pose model for rows ``[:n]`` (the networks: the pipeline's inference time)."""
        clock, model = self._clock, self.model
        t0 = clock()
        model.detect(n)
        t1 = clock()
        self._c = model.crop(n)
        t2 = clock()
        self._maps = model.run_pose(self._c) if self._c else None
        t3 = clock()
        self.detector_ns += t1 - t0
        self.crop_ns += t2 - t1
        self.pose_ns += t3 - t2
        self.crops += self._c

    def decode(self, batch: PoseBatch, n: int) -> None:
        """Each crop decoded and mapped back to its frame: row ``i``'s animals in detection order, NaN beyond."""
        t0 = self._clock()
        model, c = self.model, self._c
        if c:
            self.decoder.decode(self._maps[0], self._maps[1], self._crop_poses, c)
        k = model.metadata.num_bodyparts
        first = 0
        for i in range(n):
            found = int(model.n_boxes[i])
            pose = batch.pose[i]
            pose[found * k:] = np.nan
            for j in range(found):
                to_frame(self._crop_poses[first + j], model.scale[first + j], model.offset[first + j], self._xy32,
                         pose[j * k:(j + 1) * k])
            self._n_animals[i] = found
            first += found
        self.decode_ns += self._clock() - t0

    def summary(self) -> dict[str, float]:
        """Animals per frame; detector, crop, pose-model, decode and tracking cost (ms per frame)."""
        out = super().summary()
        f = max(self.frames, 1)
        for name, ns in (("detector", self.detector_ns), ("crop", self.crop_ns), ("pose", self.pose_ns),
                         ("decode", self.decode_ns)):
            out[f"{name}_ms_per_frame"] = round(ns / f / 1e6, 4)
        out["crops_per_frame"] = round(self.crops / f, 3)
        return out
