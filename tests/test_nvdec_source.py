"""Issue 12: `rtpose analyze --decode nvdec`, videos decoded by the GPU's video decoder (NVDEC) through
PyNvVideoCodec. No GPU here: the source is tested with a decoder that decodes with OpenCV and hands over RGB
frames in host memory as PyNvVideoCodec does, and the adapter on PyNvVideoCodec's ThreadedDecoder with a stand-in
module of its documented API (host frames read through GetPtrToPlane/framesize). Speed and NVDEC's own pixels
are measured by latency_tests/gpu_check.py on a GPU machine."""

from __future__ import annotations

import json
import sys
import types

import cv2
import numpy as np
import pytest

from offline_clips import write_clip
from rtpose.cli import main
from rtpose.drivers.sources import nvdec
from rtpose.drivers.sources.nvdec import NvdecVideoSource, PyNvVideoCodecDecoder
from rtpose.drivers.sources.video import VideoFileSource
from rtpose.errors import MissingDependencyError, SourceError
from rtpose.recording import read_dlc_table


class OpenCvRgbDecoder:
    """A HostFrameDecoder decoding with OpenCV and handing over RGB frames, like NVDEC's host output."""

    version = "fake"

    def __init__(self, path, *, resize_at=None):
        self.cap = cv2.VideoCapture(path)
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS))
        self.num_frames = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.resize_at, self.served, self.closed, self.batches = resize_at, 0, False, []

    def next_batch(self, n):
        out = []
        for _ in range(n):
            ok, bgr = self.cap.read()
            if not ok:
                break
            if self.served == self.resize_at:
                bgr = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2))
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            self.served += 1
        self.batches.append(len(out))
        return out

    def close(self):
        self.closed = True
        self.cap.release()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("nvdec") / "clip.avi", 40, start=300)


def _all(source) -> np.ndarray:
    info = source.open()
    frames = []
    buf = np.empty((info.height, info.width, 3), np.uint8)
    while source.read_into(buf):
        frames.append(buf.copy())
    source.close()
    return np.stack(frames)


def test_frames_equal_opencvs_in_order_and_end_where_the_video_ends(clip):
    made = []
    src = NvdecVideoSource(clip, decoder_factory=lambda p: made.append(OpenCvRgbDecoder(p)) or made[-1])
    got = _all(src)
    ref = _all(VideoFileSource(clip, paced=False))
    assert got.shape == ref.shape == (40, *ref.shape[1:]) and np.array_equal(got, ref)  # RGB back to BGR, exactly
    # one frame per call, copied before the next is asked for (the decoder reads ahead on its own); released
    assert made[0].closed and made[0].batches == [1] * 40 + [0]


def test_skip_passes_over_exact_frames(clip):
    ref = _all(VideoFileSource(clip, paced=False))
    src = NvdecVideoSource(clip, decoder_factory=OpenCvRgbDecoder)
    info = src.open()
    buf = np.empty((info.height, info.width, 3), np.uint8)
    assert src.skip(21) == 21 and src.next_index == 21
    assert src.read_into(buf) and np.array_equal(buf, ref[21]) and src.next_index == 22
    assert src.skip(100) == 18 and not src.read_into(buf)  # 18 were left
    src.close()
    assert src.decoding == "nvdec (PyNvVideoCodec fake)"  # named after close too: the run summary comes last


def test_open_and_read_errors_are_typed_and_release_the_decoder(clip, tmp_path):
    with pytest.raises(SourceError, match="file not found"):
        NvdecVideoSource(tmp_path / "missing.mp4", decoder_factory=OpenCvRgbDecoder).open()
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    made = []

    def factory(p, size=(64, 48)):
        made.append(OpenCvRgbDecoder(p))
        made[-1].fps, (made[-1].width, made[-1].height) = 30.0, size
        return made[-1]

    with pytest.raises(SourceError, match="NVDEC decoded no frame"):
        NvdecVideoSource(empty, decoder_factory=factory).open()
    assert made[-1].closed
    with pytest.raises(SourceError, match="NVDEC reports frame size 0x0"):
        NvdecVideoSource(empty, decoder_factory=lambda p: factory(p, (0, 0))).open()
    assert made[-1].closed
    src = NvdecVideoSource(clip, decoder_factory=lambda p: OpenCvRgbDecoder(p, resize_at=5))
    info = src.open()
    buf = np.empty((info.height, info.width, 3), np.uint8)
    for _ in range(5):
        assert src.read_into(buf)
    with pytest.raises(SourceError, match="frame 5 is .* but the video started at"):
        src.read_into(buf)
    src.close()


def test_without_pynvvideocodec_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"rtpose\[nvdec\]"):
        PyNvVideoCodecDecoder("any.mp4")


class _DecodedFrame:
    """PyNvVideoCodec's DecodedFrame in host memory: a pointer to the interleaved RGB bytes and their size."""

    def __init__(self, rgb):
        self._rgb = np.ascontiguousarray(rgb)

    def GetPtrToPlane(self, plane):  # noqa: N802 (the binding's name)
        assert plane == 0
        return self._rgb.ctypes.data

    def framesize(self):
        return self._rgb.nbytes


def _stand_in_binding(frames, calls):
    """A module with PyNvVideoCodec's ThreadedDecoder API, serving ``frames`` (RGB)."""

    class ThreadedDecoder:
        def __init__(self, enc_file_path, buffer_size, **kwargs):
            calls.append((enc_file_path, buffer_size, kwargs))
            self.left = list(frames)

        def get_stream_metadata(self):
            h, w = frames[0].shape[:2]
            return types.SimpleNamespace(width=w, height=h, num_frames=len(frames), average_fps=30.0)

        def get_batch_frames(self, n):
            out, self.left = [_DecodedFrame(f) for f in self.left[:n]], self.left[n:]
            return out

        def end(self):
            calls.append("end")

    return types.SimpleNamespace(__version__="2.2.4", ThreadedDecoder=ThreadedDecoder,
                                 OutputColorType=types.SimpleNamespace(RGB="RGB"))


def test_the_pynvvideocodec_adapter_asks_for_host_rgb_and_reads_its_frames(clip, monkeypatch):
    ref = _all(VideoFileSource(clip, paced=False))
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in ref]
    calls = []
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", _stand_in_binding(rgb, calls))
    src = NvdecVideoSource(clip, gpu_id=1)
    assert np.array_equal(_all(src), ref)
    path, prefetch, kwargs = calls[0]
    assert (path, prefetch) == (str(clip), nvdec.PREFETCH_FRAMES) and calls[-1] == "end"
    assert kwargs == {"gpu_id": 1, "use_device_memory": False, "output_color_type": "RGB"}
    src.open()
    assert src.decoding == "nvdec (PyNvVideoCodec 2.2.4)"
    src.close()


def test_analyze_decode_nvdec_writes_the_poses_of_cpu_decoding_and_records_the_decoder(clip, tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.setattr(nvdec, "PyNvVideoCodecDecoder", lambda p, gpu_id=0: OpenCvRgbDecoder(p))
    args = ["--quiet", "--threads", "1", "--batch", "4"]
    assert main(["analyze", str(clip), "--out-dir", str(tmp_path / "cpu"), *args]) == 0
    assert main(["analyze", str(clip), "--out-dir", str(tmp_path / "gpu"), "--decode", "nvdec", *args]) == 0
    out = capsys.readouterr().out
    assert "videos decoded by the GPU's video decoder (NVDEC)" in out and "nvdec (PyNvVideoCodec fake)" in out
    cpu, gpu = (read_dlc_table(tmp_path / d / "clip.rtpose.h5") for d in ("cpu", "gpu"))
    assert len(gpu) == 40 and np.array_equal(cpu.to_numpy(), gpu.to_numpy())
    status = json.loads((tmp_path / "gpu" / "clip.rtpose.status.json").read_text())
    assert status["settings"]["decode"] == "nvdec" and status["runs"][-1]["decoder"] == "nvdec (PyNvVideoCodec fake)"
    # NVDEC's pixels may differ from FFmpeg's: a CPU-decoded result is not taken as done for --decode nvdec
    assert main(["analyze", str(clip), "--out-dir", str(tmp_path / "cpu"), "--decode", "nvdec", *args]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["analyze", str(clip), "--decode", "nvdec", "--readers", "2", *args]) == 2
    assert "leave out --readers" in capsys.readouterr().err
