"""The benchmark scripts run end to end with tiny sizes and print their result line.

Only the format of the last line is checked, never a timing: the figures themselves are in
docs/performance.md, measured by hand on a known machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import browser

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = [
    pytest.param(
        ["bench/latency.py", "--n", "3", "--users", "3", "--warmup", "1"],
        r"ratio_p50_max=\d+\.\d+",
        id="latency",
    ),
    pytest.param(
        [
            "bench/latency.py",
            *("--n", "2", "--users", "2", "--warmup", "1"),
            *("--db-delay-ms", "2", "--delay-rounds", "2", "--delay-warmup", "1"),
            *("--delay-users", "2"),
        ],
        r"ratio_p50_max=\d+\.\d+",
        id="latency-delayed",
    ),
    pytest.param(
        [
            "bench/throughput.py",
            *("--n", "24", "--users", "6", "--echo-n", "12", "--rate-limited-n", "8"),
        ],
        r"updates_per_second=\d+\.\d+",
        id="throughput",
    ),
    pytest.param(
        ["bench/sensitivity.py", "--n", "3", "--users", "3", "--warmup", "1", "--extra", "2"],
        r"ms_per_round_trip=-?\d+\.\d+",
        id="sensitivity",
    ),
    pytest.param(
        [
            "bench/fairness.py",
            *("--rest", "3", "--samples", "3", "--rate", "300", "--gap", "0.01"),
            *("--rounds", "1", "--flood", "80"),
        ],
        r"ratio_p50_flood_vs_rest=\d+\.\d+",
        id="fairness",
    ),
    pytest.param(
        ["bench/footprint.py", "--n", "1", "--idle", "0.5"],
        r"startup_seconds=\d+\.\d+",
        id="footprint",
    ),
    pytest.param(
        ["bench/webapp.py", "--n", "2"],
        r"first_render_ms_median=\d+\.\d+",
        id="webapp",
        marks=pytest.mark.skipif(
            browser.missing() is not None, reason=f"browser bench skipped: {browser.missing()}"
        ),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "last_line"), SCRIPTS)
def test_bench_script_prints_its_result_last(argv: list[str], last_line: str) -> None:
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"# python {argv[0]}")
    assert any(line.startswith("machine: cores=") for line in lines[:3])
    assert re.fullmatch(last_line, lines[-1]), lines[-5:]
    if "--db-delay-ms" in argv:  # the delayed table's summary lines come just before
        assert re.fullmatch(r"derived_round_trips_max_direct=-?\d+\.\d+", lines[-3])
        assert re.fullmatch(r"derived_round_trips_max_pooler=-?\d+\.\d+", lines[-2])
