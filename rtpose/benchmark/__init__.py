"""Measuring rtpose: the ``rtpose benchmark`` sweep, system information, and
report writers (JSON, Markdown, PNG plots).

* :mod:`.sweep` runs the real :class:`~rtpose.pipeline.Pipeline` over
  combinations of frame size, batch size and execution provider and collects
  its per-stage latency statistics;
* :mod:`.sysinfo` describes the machine a result was measured on;
* :mod:`.summary` turns raw samples into percentiles (pure);
* :mod:`.report` writes JSON and Markdown; :mod:`.plots` writes PNG figures;
* :mod:`.latency_suite` runs the scripts under ``latency_tests/``.
"""
