"""The bad-input corpus: every way a user's input once lost data or hid an error, as generated cases.

Each :class:`Case` names the command a user types, a ``make`` function that
generates the bad input it needs (a truncated video, a rules file that is not
UTF-8, a model whose score maps do not fit its stride, a file where a folder
belongs, ...) in an empty folder, and the exact message and exit status the
user must get. ``tests/test_bad_inputs.py`` runs every case;
``docs/reliability.md`` lists them (its table is generated from here and
checked by a test, so the document cannot drift).

Add a case: append a ``Case`` to :data:`CASES` and regenerate the document::

    python tests/bad_inputs.py --markdown     # prints the table for docs/reliability.md
    python tests/bad_inputs.py DIR            # writes every case's inputs under DIR/<case id>/

In ``argv`` and ``message``, ``{addr}`` is a ZeroMQ address the test provides
(a publisher sending ``publish`` payloads, or an address nobody serves), and
``{any}`` in a message stands for text that varies (memory sizes, counts).
Messages are compared in full: the error line on stderr (``stream="stderr"``,
the last line), or a line of stdout (``stream="stdout"``).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# -- generators of bad inputs ---------------------------------------------------------------------


def write_avi(path: Path, frames: int = 60, size: tuple[int, int] = (64, 48)) -> Path:
    """A small MJPG .avi of seeded noise."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    writer.release()
    return path


def cut_in_half(path: Path) -> Path:
    """Keep the first half of the bytes (a copy interrupted half-way, a full disk during capture)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_avi(d: Path) -> None:
    cut_in_half(write_avi(d / "cut.avi"))  # the container announces 60 frames, 29 decode


def two_clips_same_name(d: Path) -> None:
    write_avi(d / "d1" / "clip.avi", frames=2)
    write_avi(d / "d2" / "clip.avi", frames=2)


def good_and_corrupt_videos(d: Path) -> None:
    write_avi(d / "d" / "clip.avi", frames=2)
    (d / "d" / "broken.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())


def clip_with_existing_result(d: Path) -> None:
    write_avi(d / "clip.avi", frames=2)
    (d / "o").mkdir()
    (d / "o" / "clip.rtpose.h5").write_bytes(b"an earlier result")


def clip_and_file_as_out_dir(d: Path) -> None:
    write_avi(d / "clip.avi", frames=2)
    (d / "afile").write_text("not a folder")


def a_clip(d: Path) -> None:
    write_avi(d / "clip.avi", frames=2)


def existing_recording(d: Path) -> None:
    (d / "session.h5").write_bytes(b"yesterday's session")


def a_file(d: Path) -> None:
    (d / "afile").write_text("not a folder")


def rules_not_utf8(d: Path) -> None:
    (d / "rules.yaml").write_bytes("rules:\n  - name: zone\n    # caf\xe9 in Latin-1\n".encode("latin-1"))


def rules_channel(channel: int) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / "rules.yaml").write_text(
            "version: 1\n"
            "rules:\n"
            "  - name: far\n"
            "    enter: {zone: {bodypart: snout, circle: {center: [10, 10], radius: 5}}}\n"
            f"    actions: [{{pulse: {{channel: {channel}, ms: 5}}}}]\n"
        )

    return make


def model_wrong_stride(d: Path) -> None:
    from analytic_model import build_zero_model

    build_zero_model(d / "model.onnx", stride=8, metadata_overrides={"stride": 2.0})  # the graph's stride is 8


def model_without_sigmoid(d: Path) -> None:
    from analytic_model import build_zero_model

    build_zero_model(d / "model.onnx", weight=1.0)  # "scores" are sums of pixel values, up to 765


def nothing(d: Path) -> None:
    pass


# -- the cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    section: str  # "data" (data loss, silent wrong results) or "errors" (hidden behind tracebacks or hangs)
    what: str  # the bad input, in words
    argv: tuple[str, ...]
    exit_code: int
    message: str
    make: Callable[[Path], None] = nothing
    stream: str = "stderr"
    publish: tuple[tuple[bytes, bytes], ...] | None = None  # messages a test publisher repeats at {addr}
    files_after: tuple[str, ...] = field(default=())  # files that must exist afterwards (relative)
    files_absent: tuple[str, ...] = field(default=())  # files that must not exist afterwards

    def pattern(self, addr: str = "") -> re.Pattern:
        text = re.escape(self.message.replace("{addr}", addr))
        return re.compile(text.replace(re.escape("{any}"), ".+?"))

    def args(self, addr: str = "") -> list[str]:
        return [a.replace("{addr}", addr) for a in self.argv]


def _usage_error(cmd: str, option: str, problem: str) -> str:
    return f"rtpose {cmd}: error: argument {option}: {problem}"


_REPLACE = "rtpose never replaces results unless asked: choose another output name, or pass --overwrite to replace them"

#: A pose message without a header (header id 7 is never sent), and bytes that are no MessagePack.
def _pose_without_header() -> tuple[bytes, bytes]:
    import msgpack

    from rtpose.sinks.zmq_pub import SCHEMA_VERSION

    return b"pose", msgpack.packb({"v": SCHEMA_VERSION, "hdr": 7, "seq": 0, "stream": 0})


_POSE_WITHOUT_HEADER = _pose_without_header()
_GARBAGE = (b"pose", b"\xc1\xc1 not msgpack")

CASES: tuple[Case, ...] = (
    # ---- data loss and silent wrong results
    Case("record-exists", "data", "`--record` names an existing recording",
         ("run", "--source", "synthetic:64x64", "--frames", "3", "--record", "session.h5"), 2,
         f"rtpose run: error: session.h5 already exists; {_REPLACE}", existing_recording),
    Case("analyze-corrupt-among-good", "data", "a corrupt video in a folder `analyze` is given",
         ("analyze", "d", "--quiet"), 2,
         "   d/broken.mp4: failed: video:d/broken.mp4: cannot open as a video (corrupt, truncated, or not a video "
         "format OpenCV/FFmpeg reads); check it with `ffprobe` or re-encode it, e.g. `ffmpeg -i in.avi -c:v libx264 "
         "out.mp4`", good_and_corrupt_videos, stream="stdout", files_after=("d/clip.rtpose.h5",)),
    Case("analyze-result-exists", "data", "`analyze` would replace an earlier result",
         ("analyze", "clip.avi", "--out-dir", "o"), 2,
         f"rtpose analyze: error: o/clip.rtpose.h5 already exists; {_REPLACE}", clip_with_existing_result),
    Case("analyze-names-collide", "data", "two inputs with the same name into one `--out-dir`",
         ("analyze", "d1/clip.avi", "d2/clip.avi", "--out-dir", "o"), 2,
         "rtpose analyze: error: d1/clip.avi and d2/clip.avi would both be written to o/clip.rtpose.h5; "
         "analyse them in separate runs with different --out-dir folders (or rename one)", two_clips_same_name,
         files_absent=("o",)),
    Case("truncated-video", "data", "a video cut in half (container: 60 frames, 29 decodable)",
         ("analyze", "cut.avi", "--quiet"), 3,
         "   cut.avi: PARTIAL: only 29 of the 60 frames its container announces could be decoded "
         "(truncated or damaged file; result marked partial)", truncated_avi, stream="stdout",
         files_after=("cut.rtpose.partial.h5", "cut.rtpose.partial.csv"), files_absent=("cut.rtpose.h5",)),
    Case("model-stride-mismatch", "data", "a model whose score maps do not fit the stride in its metadata",
         ("run", "--model", "model.onnx", "--source", "synthetic:64x64", "--frames", "1"), 2,
         "rtpose run: error: model.onnx: for 256x256 frames the score map is 32x32 cells, but the metadata's stride "
         "2 means about 128x128; poses would be decoded at wrong places. The stride in the metadata does not fit the "
         "graph (its real stride is about 8): re-export the model with the right stride (rtpose export --stride)",
         model_wrong_stride),
    Case("model-stride-mismatch-info", "data", "`rtpose info` on that model (refused when loaded)",
         ("info", "model.onnx"), 2,
         "rtpose info: error: model.onnx: for 256x256 frames the score map is 32x32 cells, but the metadata's stride "
         "2 means about 128x128; poses would be decoded at wrong places. The stride in the metadata does not fit the "
         "graph (its real stride is about 8): re-export the model with the right stride (rtpose export --stride)",
         model_wrong_stride),
    Case("model-scores-not-probabilities", "data", "a model whose score maps are not in 0..1 (no sigmoid)",
         ("run", "--model", "model.onnx", "--source", "synthetic:64x64", "--frames", "1"), 2,
         "rtpose run: error: model.onnx: on a test frame the score maps range from {any} to {any}, but they must be "
         "probabilities in 0..1 (likelihoods). The graph probably lacks the final sigmoid: re-export it with "
         "`rtpose export`", model_without_sigmoid),
    Case("publish-port-too-big", "data", "`--publish` with port 99999 (ZeroMQ would bind 34463)",
         ("run", "--source", "synthetic:64x64", "--frames", "1", "--publish", "tcp://127.0.0.1:99999"), 2,
         "rtpose run: error: publish address 'tcp://127.0.0.1:99999': port 99999 is outside 1..65535; use e.g. "
         "tcp://127.0.0.1:5555, or tcp://127.0.0.1:* for any free port"),
    Case("publish-port-zero", "data", "`--publish` with port 0",
         ("run", "--source", "synthetic:64x64", "--frames", "1", "--publish", "tcp://127.0.0.1:0"), 2,
         "rtpose run: error: publish address 'tcp://127.0.0.1:0': port 0 is outside 1..65535; use e.g. "
         "tcp://127.0.0.1:5555, or tcp://127.0.0.1:* for any free port"),
    Case("rule-channel-outside-protocol", "data", "a rule pulsing channel 300",
         ("run", "--source", "synthetic:64x64", "--frames", "1", "--rules", "rules.yaml", "--serial", "null"), 2,
         "rtpose run: error: rule 'far': channel 300 is outside 0..255, the channels the trigger protocol carries; "
         "change the rule's channel", rules_channel(300)),
    Case("rule-channel-not-on-device", "data", "a rule pulsing channel 12 of a 9-channel device",
         ("run", "--source", "synthetic:64x64", "--frames", "1", "--rules", "rules.yaml", "--serial", "emulator"), 2,
         "rtpose run: error: rule 'far': pulse on channel 12, but serial:emulator drives channels 0..8; "
         "change the rule's channel", rules_channel(12)),
    # ---- errors hidden behind tracebacks or hangs
    Case("out-dir-is-a-file", "errors", "`analyze --out-dir` names a file",
         ("analyze", "clip.avi", "--out-dir", "afile"), 2,
         "rtpose analyze: error: --out-dir afile is a file, not a folder; give a folder (it is created if missing)",
         clip_and_file_as_out_dir),
    Case("record-folder-is-a-file", "errors", "`--record` inside a path that is a file",
         ("run", "--source", "synthetic:64x64", "--frames", "1", "--record", "afile/session.h5"), 2,
         "rtpose run: error: cannot create recording afile/session.h5: afile is a file, not a folder; "
         "record into a folder (it is created if missing)", a_file),
    Case("output-delay-nan", "errors", "`--output-delay-ms nan`",
         ("run", "--source", "synthetic:64x64", "--output-delay-ms", "nan"), 2,
         _usage_error("run", "--output-delay-ms",
                      "nan is not allowed; give a finite number of milliseconds >= 0, e.g. 10")),
    Case("output-delay-inf", "errors", "`--output-delay-ms inf`",
         ("run", "--source", "synthetic:64x64", "--output-delay-ms", "inf"), 2,
         _usage_error("run", "--output-delay-ms",
                      "inf is not allowed; give a finite number of milliseconds >= 0, e.g. 10")),
    Case("threads-negative", "errors", "`--threads -3`",
         ("run", "--source", "synthetic:64x64", "--threads", "-3"), 2,
         _usage_error("run", "--threads", "-3 is not allowed; give a whole number of at least 1")),
    Case("batch-zero", "errors", "`analyze --batch 0`",
         ("analyze", "clip.avi", "--batch", "0"), 2,
         _usage_error("analyze", "--batch", "0 is not allowed; give a whole number of at least 1"), a_clip),
    Case("frames-negative", "errors", "`--frames -5`",
         ("run", "--source", "synthetic:64x64", "--frames", "-5"), 2,
         _usage_error("run", "--frames", "-5 is not allowed; give a whole number of at least 1")),
    Case("rules-not-utf8", "errors", "a rules file that is not UTF-8",
         ("run", "--source", "synthetic:64x64", "--frames", "1", "--rules", "rules.yaml"), 2,
         "rtpose run: error: rules file 'rules.yaml' is not UTF-8 text (byte 31: b'\\xe9'); save it as UTF-8 "
         "(any text editor can) or check that it is the rules file", rules_not_utf8),
    Case("synthetic-too-big", "errors", "`synthetic:100000x100000` (30 GB per frame)",
         ("run", "--source", "synthetic:100000x100000", "--frames", "1"), 2,
         "rtpose run: error: 100000x100000 frames (batch 1) needs at least {any} of memory (frame rings {any}, "
         "network {any}) but only {any} is available; use a smaller frame size (e.g. synthetic:640x480, or a "
         "camera's width=/height= options)"),
    Case("synthetic-noise-too-big", "errors", "`synthetic:100000x100000,noise=2`",
         ("run", "--source", "synthetic:100000x100000,noise=2", "--frames", "1"), 2,
         "rtpose run: error: source synthetic:100000x100000@30,seed=0: noise needs at least {any} of memory "
         "(noise buffer {any}) but only {any} is available; use a smaller frame size or no noise"),
    Case("listen-garbage", "errors", "`rtpose listen` receiving bytes that are not MessagePack",
         ("listen", "{addr}", "--timeout", "30"), 2,
         "rtpose listen: error: {addr} sent a b'pose' message that is not MessagePack ({any}); is the address an "
         "rtpose publisher (rtpose run --publish)?", publish=(_GARBAGE,)),
    Case("listen-no-header", "errors", "`rtpose listen` receiving poses whose header never comes",
         ("listen", "{addr}", "--timeout", "1"), 2,
         "rtpose listen: error: nothing received within 1000 ms: {any} pose messages arrived from {addr} but none "
         "could be decoded: the header they refer to (id 7) has not arrived. Publishers resend it at least every "
         "second; if this persists the publisher is a different rtpose version: use the same version on both sides",
         publish=(_POSE_WITHOUT_HEADER,)),
    Case("listen-no-publisher", "errors", "`rtpose listen` on an address nobody publishes on",
         ("listen", "{addr}", "--timeout", "0.2"), 2,
         "rtpose listen: error: nothing received within 200 ms: no publisher at {addr} (nothing accepted the "
         "connection); start one with `rtpose run --publish {addr} ...` or check the address"),
    Case("listen-timeout-nan", "errors", "`rtpose listen --timeout nan`",
         ("listen", "tcp://127.0.0.1:5555", "--timeout", "nan"), 2,
         "rtpose listen: error: --timeout must be a finite number of seconds > 0, got nan"),
)

def markdown_table(section: str) -> str:
    rows = ["| case | what the user did | exit | what the user sees |", "| --- | --- | --- | --- |"]
    for c in CASES:
        if c.section == section:
            shown = c.message.replace("{any}", "…").replace("{addr}", "ADDR").replace("|", "\\|")
            rows.append(f"| `{c.id}` | {c.what} | {c.exit_code} | {shown.strip()} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--markdown"]:
        for section in ("data", "errors"):
            print(markdown_table(section) + "\n")
        return 0
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    for c in CASES:
        d = out / c.id
        d.mkdir(parents=True, exist_ok=True)
        c.make(d)
        print(f"{d}: rtpose {' '.join(c.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
