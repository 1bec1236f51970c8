"""The one clock rtpose stamps frames with.

``CLOCK_MONOTONIC`` in nanoseconds: system-wide on Linux, so a subscriber in
another process on the same machine can compare its own ``monotonic_ns()``
with a frame's ``t_capture_ns``. Pure modules never call it: time is passed in.
Threads that need "now" take a ``clock`` argument defaulting to this, so tests
can inject a fake.
"""

from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], int]

monotonic_ns: Clock = time.monotonic_ns
