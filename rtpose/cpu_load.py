"""How much CPU other programs use: machine-wide busy time minus this process's own.

Read from ``/proc/stat`` (Linux); elsewhere :func:`busy_cpu_s` returns None and
callers treat the load as unknown. Used by ``--threads auto``
(:mod:`rtpose.adaptive_threads`) and by the benchmarks' *unplanned load*
column (:class:`rtpose.benchmark.sysinfo.OtherLoad`).
"""

from __future__ import annotations

import os
import resource
import time


def busy_cpu_s() -> float | None:
    """CPU seconds all processes have used (``/proc/stat``, busy = total - idle - iowait); None if unknown."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields[:8]]
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (sum(ticks) - ticks[3] - ticks[4]) / hz


def own_cpu_s() -> float:
    """CPU seconds this process (all its threads) and its waited-for children have used."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def other_load_cores(busy0: float | None, own0: float, busy1: float | None, own1: float, wall_s: float) -> float:
    """Cores other processes kept busy between two readings of (:func:`busy_cpu_s`, :func:`own_cpu_s`)
    ``wall_s`` seconds apart: NaN when unknown. Pure."""
    if busy0 is None or busy1 is None or not wall_s > 0:
        return float("nan")
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / wall_s)
