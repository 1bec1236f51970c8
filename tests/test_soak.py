"""The soak (latency_tests/soak.py) for 30 seconds: the whole closed loop keeps exact accounting.

Publish + rules + serial emulator + recording + a live subscriber in another
process. Asserted: captured = processed + dropped, every file one row per
processed frame, every pose and event received, rule firings = pulses received
= acknowledged = events, threads and file descriptors flat, everything released
at the end. Nothing about time or memory is asserted (the soak reports memory;
docs/reliability.md has the figures of long runs).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "latency_tests" / "soak.py"


@pytest.mark.slow
def test_30_second_soak_loses_nothing_and_grows_no_threads_or_fds(tmp_path):
    result_file = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, str(SOAK), "--minutes", "0.5", "--out", str(tmp_path / "rec"),
                           "--json", str(result_file)], capture_output=True, text=True, timeout=1800)
    assert result_file.is_file(), proc.stdout + proc.stderr
    result = json.loads(result_file.read_text())
    assert result["checks"] and all(result["checks"].values()), proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    c = result["counts"]
    assert c["captured"] == c["processed"] + c["dropped"] and c["processed"] > 0
    assert set(c["rows"].values()) == {c["processed"]}
    assert c["published"] == c["received"] == c["processed"] and c["gaps"] == c["skipped"] == 0
    assert c["rule_fired"] == c["pulses_received"] == c["pulses_acked"] == c["events_received"] > 0
