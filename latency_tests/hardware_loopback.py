"""Hardware loop-back: trigger an LED in view of the camera and read the latency from the frames.

The other latency tests stop at the serial byte's arrival (emulated device) and
start at the frame's capture stamp. What they cannot see is the hardware: how
long the device takes to switch the line, and how long the camera takes from
exposing a frame to delivering it (exposure, readout, USB, driver). This script
closes that loop on a real rig (procedure: latency_tests/hardware_loopback.md):

1. a thread reads the camera continuously (like rtpose's capture thread),
   stamping each frame on arrival (``CLOCK_MONOTONIC``) and measuring the mean
   brightness of a region of interest (ROI) around the LED;
2. it calibrates "off" and "on" brightness (one long pulse), threshold = midpoint;
3. for each trial it sleeps a random 0.3-0.7 s (so pulses fall at random
   phases of the frame clock), stamps ``t_send`` and sends a
   pulse through the trigger output, then finds the first frame whose ROI is
   above the threshold: latency = that frame's arrival stamp - ``t_send``.

The result is output latency + camera latency + the wait for the next
exposure (uniform over one frame period: subtract half a period for the mean).
Adding the pipeline's own capture->trigger figure (camera_to_trigger.py) gives
photons-in to TTL-out.

``--emulate`` runs the same procedure without hardware: the pty device
emulator is the trigger device and a fake camera draws the LED lit whenever the
emulator's line is high at the frame's time, so the result is the serial path
plus the frame quantisation (a self-test of the procedure).

    .venv/bin/python latency_tests/hardware_loopback.py --emulate
    .venv/bin/python latency_tests/hardware_loopback.py --camera camera:0 --serial /dev/ttyACM0 --roi 300,220,40,40
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table  # noqa: E402

from rtpose.benchmark.summary import summarize  # noqa: E402
from rtpose.clock import monotonic_ns  # noqa: E402
from rtpose.drivers.sources.base import FrameSource, SourceInfo  # noqa: E402
from rtpose.drivers.sources.pacing import Pacer  # noqa: E402
from rtpose.errors import ConfigError, SourceError  # noqa: E402
from rtpose.results import Action  # noqa: E402

TITLE = "Hardware loop-back: trigger -> LED -> camera"


class EmulatedLedCamera(FrameSource):
    """A fake camera for ``--emulate``: a dark frame with an LED square lit while ``line_high(t)``."""

    def __init__(self, line_high, width: int = 320, height: int = 240, fps: float = 60.0,
                 roi=(150, 110, 20, 20)):
        super().__init__(f"emulated-led-camera:{width}x{height}@{fps:g}")
        self._line_high, self._w, self._h, self._fps, self.roi = line_high, width, height, fps, roi
        self._pacer: Pacer | None = None
        self._i = 0

    def _do_open(self) -> SourceInfo:
        self._pacer = Pacer(self._fps)
        self._pacer.start()
        self._i = 0
        return SourceInfo(self._w, self._h, self._fps, None, True)

    def _do_read_into(self, out: np.ndarray) -> bool:
        self._pacer.wait_for(self._i)
        self._i += 1
        out.fill(20)
        if self._line_high(monotonic_ns()):  # the "exposure" happens at delivery time
            x, y, w, h = self.roi
            out[y:y + h, x:x + w] = 250
        return True


class Loopback:
    """A reader thread reads frames continuously (as rtpose's capture thread does), stamps each on
    arrival and records the ROI brightness; the caller sends pulses at random moments (not locked to
    the frame clock) and asks for the first lit frame after each."""

    def __init__(self, source: FrameSource, output, roi, channel: int = 0):
        self.source, self.output, self.roi, self.channel = source, output, roi, channel
        info = source.open()
        x, y, w, h = roi
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > info.width or y + h > info.height:
            raise ConfigError(f"--roi {roi} is not inside the {info.width}x{info.height} frame")
        self.fps = info.fps
        self._frame = np.zeros((info.height, info.width, 3), np.uint8)
        self._t = np.zeros(1 << 16, np.int64)
        self._level = np.zeros(1 << 16, np.float64)
        self._n = 0
        self._cond = threading.Condition()
        self._stop = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="loopback-camera", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        x, y, w, h = self.roi
        try:
            while not self._stop:
                if not self.source.read_into(self._frame):
                    raise SourceError(self.source.name, "the camera stopped delivering frames")
                t = monotonic_ns()
                level = float(self._frame[y:y + h, x:x + w].mean())
                with self._cond:
                    i = self._n % len(self._t)
                    self._t[i], self._level[i] = t, level
                    self._n += 1
                    self._cond.notify_all()
        except BaseException as exc:  # re-raised to the caller by wait_frames
            self.error = exc
            with self._cond:
                self._cond.notify_all()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)

    def frames_since(self, t_ns: int, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Block until a frame stamped after ``t_ns + timeout`` arrived; return (stamps, levels) after ``t_ns``."""
        end = t_ns + int(timeout_s * 1e9)
        with self._cond:
            ok = self._cond.wait_for(lambda: self.error is not None or
                                     (self._n and self._t[(self._n - 1) % len(self._t)] >= end), timeout_s + 5)
            if self.error is not None:
                raise self.error
            if not ok:
                raise SourceError(self.source.name, "no frames arrive from the camera")
            n = min(self._n, len(self._t))
            idx = (np.arange(self._n - n, self._n)) % len(self._t)
            t, v = self._t[idx], self._level[idx]
        keep = t > t_ns
        return t[keep], v[keep]

    def pulse(self, ms: float) -> int:
        t_send = monotonic_ns()
        if not self.output.send(Action("pulse", rule="loopback", t_ns=t_send, frame_index=-1, channel=self.channel,
                                       duration_ms=ms)):
            raise RuntimeError("the trigger output refused the pulse (queue full or device not ready)")
        return t_send

    def calibrate(self, on_ms: float = 400.0) -> tuple[float, float]:
        _, before = self.frames_since(monotonic_ns(), 0.5)
        off = float(np.median(before))
        t = self.pulse(on_ms)
        _, during = self.frames_since(t, on_ms / 1000 + 0.2)
        on = float(during.max())
        time.sleep(0.3)
        if on - off < 10:
            raise RuntimeError(f"the ROI brightens only from {off:.0f} to {on:.0f} when the LED is on: check the ROI "
                               "(--roi x,y,w,h around the LED), the wiring and the channel")
        return off, on

    def trial(self, threshold: float, pulse_ms: float, timeout_s: float = 1.0) -> float | None:
        time.sleep(random.uniform(0.3, 0.7))  # a random phase with respect to the camera's frames
        t_send = self.pulse(pulse_ms)
        first = self._n
        deadline = t_send + int(timeout_s * 1e9)

        def lit_or_late():
            last = (self._n - 1) % len(self._t)
            return self.error is not None or (self._n > first and (
                self._t[last] >= deadline or (self._t[last] > t_send and self._level[last] >= threshold)))

        with self._cond:
            self._cond.wait_for(lit_or_late, timeout_s + 5)
            if self.error is not None:
                raise self.error
            idx = np.arange(first, self._n) % len(self._t)
            t, v = self._t[idx], self._level[idx]
        lit = np.flatnonzero((v >= threshold) & (t > t_send))
        return float((t[lit[0]] - t_send) * 1e-6) if len(lit) else None


def run(quick: bool = False, model=None, *, emulate: bool = True, camera: str | None = None,
        serial: str | None = None, roi=None, trials: int | None = None, pulse_ms: float = 50.0,
        channel: int = 0) -> dict:
    from rtpose.drivers.outputs import open_output

    trials = trials or (10 if quick else 60)
    if emulate:
        output = open_output("emulator")
        emu = output.emulator
        cam = EmulatedLedCamera(lambda t: emu.level(channel, t) == 1)
        roi = cam.roi
        label = "emulated device (pty) and emulated 60 FPS camera"
    else:
        if not (camera and serial and roi):
            raise ConfigError("a hardware loop-back needs --camera, --serial and --roi (or --emulate)")
        from rtpose.drivers.sources import open_source

        output = open_output(serial)
        cam = open_source(camera)
        label = f"{camera} and {serial}"
    try:
        loop = Loopback(cam, output, roi, channel)
        off, on = loop.calibrate()
        threshold = (off + on) / 2
        print(f"{label}: ROI off {off:.0f}, on {on:.0f}, threshold {threshold:.0f}; {trials} trials ...", flush=True)
        lat = [loop.trial(threshold, pulse_ms) for _ in range(trials)]
    finally:
        if "loop" in locals():
            loop.close()
        cam.close()
        output.close()
    seen = np.array([x for x in lat if x is not None])
    s = summarize(seen)
    period_ms = 1e3 / loop.fps
    print(f"trigger -> first lit frame: p50 {s['p50']:.2f} ms  p90 {s['p90']:.2f}  p99 {s['p99']:.2f}  max "
          f"{s['max']:.2f}  ({len(seen)}/{trials} seen; frame period {period_ms:.1f} ms)")
    table = md_table(["setup", "trials seen", "p50 (ms)", "p90", "p99", "max", "frame period (ms)"],
                     [[label, f"{len(seen)}/{trials}", f"{s['p50']:.2f}", f"{s['p90']:.2f}", f"{s['p99']:.2f}",
                       f"{s['max']:.2f}", f"{period_ms:.1f}"]], "lrrrrrr")
    return {"title": TITLE, "status": "ok", "setup": label, "ms": s, "missed": trials - len(seen),
            "frame_period_ms": period_ms, "markdown": table,
            "verdict": f"trigger to first lit frame p50 {s['p50']:.2f} ms (includes up to one frame period of "
                       f"{period_ms:.1f} ms waiting for the next exposure)"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emulate", action="store_true", help="no hardware: emulated device and LED camera")
    p.add_argument("--camera", help="camera source spec, e.g. camera:0 or camera:0,width=640,height=480,fps=100")
    p.add_argument("--serial", help="trigger device, e.g. /dev/ttyACM0")
    p.add_argument("--roi", help="x,y,w,h of a box around the LED in the image")
    p.add_argument("--channel", type=int, default=0, help="output channel the LED is wired to (default 0)")
    p.add_argument("--pulse-ms", type=float, default=50.0, help="pulse length (default 50 ms)")
    p.add_argument("--trials", type=int, default=None, help="number of pulses (default 60; 10 with --quick)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    roi = tuple(int(v) for v in args.roi.split(",")) if args.roi else None
    if roi is not None and len(roi) != 4:
        raise SystemExit("--roi must be x,y,w,h")
    return run(quick=args.quick, emulate=args.emulate or not args.camera, camera=args.camera, serial=args.serial,
               roi=roi, trials=args.trials, pulse_ms=args.pulse_ms, channel=args.channel)


if __name__ == "__main__":
    main()
