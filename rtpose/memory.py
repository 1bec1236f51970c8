"""How much memory a run needs, checked against what the machine has *before* allocating it.

A frame size typed by mistake (``synthetic:100000x100000``) would otherwise die
in a NumPy traceback, or worse, grow until the kernel's OOM killer ends the
process, unresponsive to Ctrl-C/SIGTERM meanwhile (one huge allocation or
inference call does not return to Python to run a signal handler).
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

#: Working memory of the network per input pixel per batch frame (activations, input and output
#: buffers), measured for the bundled model with ONNX Runtime on CPU (~170-190 bytes). Deeper
#: networks (DeepLabCut's ResNet-50) need several times more, so this is a floor: a size refused
#: with it certainly does not fit.
MODEL_BYTES_PER_PIXEL = 170


def available_bytes(meminfo: str | Path = "/proc/meminfo", cgroup: str | Path = "/sys/fs/cgroup") -> int | None:
    """Memory this process can still get: the kernel's MemAvailable, lowered by a cgroup (container)
    limit when there is one; None where neither can be read (not Linux)."""
    found: list[int] = []
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path(cgroup, "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path(cgroup, "memory.current").read_text().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_fits(what: str, parts: dict[str, int], hint: str, available: int | None = None) -> None:
    """Raise ConfigError when the ``parts`` (name -> bytes) of ``what`` exceed the available memory."""
    available = available_bytes() if available is None else available
    need = sum(parts.values())
    if available is not None and need > available:
        detail = ", ".join(f"{name} {format_bytes(n)}" for name, n in parts.items() if n)
        raise ConfigError(f"{what} needs at least {format_bytes(need)} of memory ({detail}) but only "
                          f"{format_bytes(available)} is available; {hint}")
