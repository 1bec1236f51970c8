"""``--threads auto``: inference threads that follow the machine's load while rtpose runs.

On a CPU, ONNX Runtime splits each operator over its intra-op threads and
waits for the slowest. When another program keeps one of the cores busy, the
thread that shares that core runs at half speed and the whole frame waits for
it: on a 2-core machine, 2 threads are fastest idle, 1 thread is steadier (and
faster at p99) beside a busy core (docs/performance.md, "Steady latency").
No fixed thread count is right for a rig whose other programs come and go.

:class:`AdaptiveThreadsModel` runs the model with as many threads as the cores
other programs leave free: it measures the *other* load (machine-wide busy CPU
time minus rtpose's own, :mod:`rtpose.cpu_load`) over windows of
``window_s`` and switches between ONNX Runtime sessions of the same model
(built at start-up, one per thread count it may use) at a batch boundary,
never inside one: poses do not depend on the thread count, only speed does.

:class:`ThreadRule` is the decision, a pure function with hysteresis: with
``cores`` usable cores and ``other`` cores used by other programs, it uses
``cores - ceil(other - down_at)`` threads (at least 1; rounded down to one of at
most four counts, :meth:`ThreadRule.counts`) when the load rises and goes back
up only once ``other`` has fallen below ``up_at`` of the next core.
Time is an argument (the ``clock``); the load reading is injected for tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from .clock import Clock, monotonic_ns
from .cpu_load import busy_cpu_s, other_load_cores, own_cpu_s
from .errors import ConfigError

#: Other programs' load (in cores) above which one fewer thread is used, and below which it is used again.
DOWN_AT_CORES = 0.5
UP_AT_CORES = 0.25
#: How often the load is read (seconds of the run's clock); one reading costs one read of /proc/stat.
WINDOW_S = 0.5


@dataclass(frozen=True)
class ThreadRule:
    """How many intra-op threads to use for a given load of other programs. Pure."""

    cores: int
    down_at: float = DOWN_AT_CORES
    up_at: float = UP_AT_CORES

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ConfigError(f"--threads auto needs at least one usable core, got {self.cores}")
        if not 0 <= self.up_at <= self.down_at <= 1:
            raise ConfigError(f"thread rule thresholds must satisfy 0 <= up_at ({self.up_at}) <= down_at "
                              f"({self.down_at}) <= 1")

    def _threads(self, other: float, threshold: float) -> int:
        wanted = max(1, min(self.cores, self.cores - math.ceil(other - threshold)))
        return max(n for n in self.counts() if n <= wanted)  # rounded down to a count with a session

    def choose(self, other: float, current: int) -> int:
        """Threads for the next window, given ``other`` cores busy with other programs (NaN: unknown, keep)."""
        if math.isnan(other):
            return current
        down = self._threads(other, self.down_at)
        if down < current:
            return down
        up = self._threads(other, self.up_at)
        return up if up > current else current

    def counts(self) -> tuple[int, ...]:
        """Every thread count :meth:`choose` can return, most first: all cores, one fewer, half, and one. At most
        four, since each is an ONNX Runtime session built at start-up (the model's weights once per session)."""
        return tuple(sorted({self.cores, max(1, self.cores - 1), max(1, self.cores // 2), 1}, reverse=True))


class LoadMeter:
    """Reads the other programs' load every ``window_s`` of ``clock``; :meth:`poll` returns the load in
    cores for the window that just ended, or None before a window has passed."""

    def __init__(self, clock: Clock = monotonic_ns, window_s: float = WINDOW_S,
                 read: Callable[[], tuple[float | None, float]] = lambda: (busy_cpu_s(), own_cpu_s())):
        self._clock, self._read = clock, read
        self._window_ns = int(window_s * 1e9)
        self._t = clock()
        self._busy, self._own = read()

    def poll(self) -> float | None:
        t = self._clock()
        if t - self._t < self._window_ns:
            return None
        busy, own = self._read()
        other = other_load_cores(self._busy, self._own, busy, own, (t - self._t) * 1e-9)
        self._t, self._busy, self._own = t, busy, own
        return other


@dataclass
class SwitchLog:
    """What ``--threads auto`` did, for the run summary."""

    switches: int = 0
    batches: dict[int, int] = field(default_factory=dict)  # thread count -> batches run with it
    max_other_cores: float = 0.0


class AdaptiveThreadsModel:
    """A pose backend (the :class:`~rtpose.model.PoseBackend` calls) over one session per thread count.

    ``make(threads)`` builds the model with that many threads (e.g. ``lambda n: load_model(path, threads=n)``).
    All are built here, at start-up, so a switch never stalls a frame.
    """

    def __init__(self, make: Callable[[int], object], rule: ThreadRule, meter: LoadMeter | None = None):
        self.rule = rule
        self._models = {n: make(n) for n in rule.counts()}
        self._threads = rule.cores
        self._model = self._models[self._threads]
        self._meter = meter or LoadMeter()
        self.log = SwitchLog()
        first = self._model
        self.metadata, self.path, self.provider = first.metadata, first.path, first.provider
        self.spinning = getattr(first, "spinning", False)
        #: the model returns poses itself (``run_poses``; exported with ``--decode-in-graph``)
        self.decodes_in_graph = bool(getattr(first, "decodes_in_graph", False))

    # ------------------------------------------------------------------ PoseBackend
    def prepare(self, max_batch: int, height: int, width: int, *, variable_size: bool = False) -> None:
        for m in self._models.values():
            m.prepare(max_batch, height, width, variable_size=variable_size)

    def set_input_size(self, height: int, width: int) -> None:
        for m in self._models.values():
            m.set_input_size(height, width)

    def load_frame(self, row: int, frame_bgr) -> None:
        self._model.load_frame(row, frame_bgr)

    def map_shape(self) -> tuple[int, int]:
        return self._model.map_shape()

    def run(self, n: int):
        out = self._model.run(n)
        self._after_batch()
        return out

    def run_poses(self, n: int):
        out = self._model.run_poses(n)
        self._after_batch()
        return out

    def execution(self) -> dict:
        """How the model runs (the session in use now), with the thread policy."""
        info = dict(self._model.execution()) if hasattr(self._model, "execution") else {}
        info["threads"] = "auto"
        return info

    def _after_batch(self) -> None:
        self.log.batches[self._threads] = self.log.batches.get(self._threads, 0) + 1
        other = self._meter.poll()
        if other is not None:
            if not math.isnan(other):
                self.log.max_other_cores = max(self.log.max_other_cores, other)
            wanted = self.rule.choose(other, self._threads)
            if wanted != self._threads:  # takes effect from the next batch's load_frame
                self._threads, self._model = wanted, self._models[wanted]
                self.log.switches += 1

    # ------------------------------------------------------------------ reporting
    @property
    def threads(self) -> int:
        """The thread count in use now."""
        return self._threads

    @property
    def settings(self) -> str:
        total = sum(self.log.batches.values()) or 1
        used = ", ".join(f"{n}: {100 * b / total:.0f} %" for n, b in sorted(self.log.batches.items(), reverse=True))
        return (f"auto threads (1-{self.rule.cores}, fewer while other programs use the CPU; batches per thread "
                f"count {used or 'none'}; {self.log.switches} switches; other programs' load up to "
                f"{self.log.max_other_cores:.1f} cores), spinning {'on' if self.spinning else 'off'}")


__all__ = ["AdaptiveThreadsModel", "LoadMeter", "SwitchLog", "ThreadRule", "DOWN_AT_CORES", "UP_AT_CORES",
           "WINDOW_S"]
