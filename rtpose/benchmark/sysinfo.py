"""What machine a measurement was taken on: CPU, cores, memory, GPU, package
versions, and how busy the machine was (other processes competing for CPU).

Everything here reads the system (``/proc``, ``nvidia-smi``, package metadata);
nothing is measured. :func:`system_info` returns a JSON-ready dict.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone

from ..cpu_load import busy_cpu_s, other_load_cores, own_cpu_s

#: Packages whose versions a result depends on.
PACKAGES = ("rtpose", "numpy", "numba", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless",
            "opencv-python", "pyzmq", "msgpack", "pyserial", "tensorflow", "tensorflow-cpu", "tf2onnx", "onnx")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent packages are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs from ``nvidia-smi`` (empty when it is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    result = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            result.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return result


def onnxruntime_providers() -> list[str]:
    try:
        import onnxruntime

        return list(onnxruntime.get_available_providers())
    except Exception:  # noqa: BLE001 - a broken install is reported, not raised, here
        return []


def busy_processes(min_cpu_percent: float = 20.0) -> list[dict[str, object]]:
    """Other processes using at least ``min_cpu_percent`` of a core (``ps``'s lifetime average).

    Used to say whether a measurement ran under contention (e.g. a training job).
    """
    exe = shutil.which("ps")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "-eo", "pid,pcpu,args", "--sort=-pcpu"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    me = os.getpid()
    busy = []
    for line in out.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        try:
            pid, pcpu = int(parts[0]), float(parts[1])
        except ValueError:
            continue
        if pcpu < min_cpu_percent:
            break
        if pid != me and "ps -eo" not in parts[2]:
            busy.append({"pid": pid, "cpu_percent": pcpu, "command": parts[2][:120]})
    return busy


def system_info() -> dict[str, object]:
    """A JSON-ready description of this machine and its software."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    busy = busy_processes()
    return {
        "timestamp_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": memory_gib(),
        "gpus": gpus(),
        "onnxruntime_providers": onnxruntime_providers(),
        "packages": package_versions(),
        "load_average": [round(x, 2) for x in load],
        "busy_processes": busy,
        "contended": bool(busy),
    }


def describe(info: dict) -> str:
    """One line for the top of a report."""
    gpu = "; ".join(f"{g['name']} (driver {g['driver']})" for g in info.get("gpus") or []) or "no GPU"
    contention = ("under contention: " + ", ".join(f"`{p['command'][:60]}` {p['cpu_percent']:.0f}% CPU"
                                                   for p in info["busy_processes"])
                  if info.get("busy_processes") else "no other busy process")
    return (f"{info['cpu_model']}, {info['usable_cores']} usable cores, {info.get('memory_gib')} GiB, {gpu}; "
            f"Python {info['python']}, onnxruntime {info['packages'].get('onnxruntime') or info['packages'].get('onnxruntime-gpu', '?')}; "
            f"load {info['load_average']}; {contention}")


class OtherLoad:
    """How many cores *other* processes kept busy while a measurement ran.

    ``with OtherLoad() as load: ...`` then ``load.cores``: (machine-wide busy CPU
    time - this process's and its waited-for children's CPU time) / wall time.
    0 on an otherwise idle machine; on a 2-core machine, 1.0 means another
    process used a whole core. NaN where ``/proc/stat`` is unavailable.
    """

    def __enter__(self) -> "OtherLoad":
        self._busy, self._own, self._t = busy_cpu_s(), own_cpu_s(), time.perf_counter()
        self.cores = float("nan")
        return self

    def __exit__(self, *exc) -> None:
        self.cores = other_load_cores(self._busy, self._own, busy_cpu_s(), own_cpu_s(),
                                      time.perf_counter() - self._t)
