"""Run the measurement scripts under ``latency_tests/`` from ``rtpose benchmark --suite latency``.

The scripts live in the source tree (``latency_tests/`` beside the ``rtpose``
package, or the folder named by ``$RTPOSE_LATENCY_TESTS``); each defines
``run(quick=False, model=None) -> dict`` (and ``main()`` for running it alone).
A result dict has ``title``, ``status`` ("ok" / "skipped"), ``markdown``
(its tables), ``verdict`` (the goal and whether it was met) and its numbers.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError
from .sysinfo import OtherLoad

#: Script names, in the order they run.
TESTS = ("pipeline_overhead", "decode_speed", "zmq_alone", "camera_to_publish", "camera_to_trigger", "prediction",
         "hardware_loopback", "threads_under_load", "graph_decode")
#: Run only on request (creates a separate virtual environment, minutes the first time).
OPTIONAL = ("dlc_live_side_by_side",)


def tests_dir() -> Path:
    env = os.environ.get("RTPOSE_LATENCY_TESTS")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "latency_tests"
    if not (folder / "pipeline_overhead.py").is_file():
        raise ConfigError(
            f"the latency tests are not at {folder}: they ship with the rtpose source tree, not the wheel. "
            "Run from a git checkout, or set RTPOSE_LATENCY_TESTS to its latency_tests/ folder.")
    return folder


def load(name: str):
    """Import ``latency_tests/<name>.py`` (or ``<name>/run.py``) as a module."""
    folder = tests_dir()
    path = folder / f"{name}.py"
    if not path.is_file():
        path = folder / name / "run.py"
    if not path.is_file():
        raise ConfigError(f"no latency test {name!r} in {folder} (known: {', '.join(TESTS + OPTIONAL)})")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(f"rtpose_latency_tests.{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_suite(names: Sequence[str] = TESTS, *, quick: bool = False, model=None,
              on_start: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Run each named test; a test that raises is reported as failed (with its error) and the rest go on."""
    results: dict[str, dict] = {}
    for name in names:
        if on_start:
            on_start(name)
        try:
            module = load(name)
            with OtherLoad() as busy:
                results[name] = module.run(quick=quick, model=model)
            results[name]["other_cpu_cores"] = busy.cores
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken measurement must not hide the others
            traceback.print_exc()
            results[name] = {"title": name, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    return results
