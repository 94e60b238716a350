"""The examples run as their docstrings say."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_the_progress_example_fills_its_bar_in_three_rounds() -> None:
    # One host in 200 is down (3 attempts, all failed); one in 50 fails once.
    finished = subprocess.run(
        [sys.executable, str(ROOT / "examples/progress.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    down = ", ".join(f"web{number:04}" for number in range(0, 2000, 200))
    assert finished.stdout == f"partial: 10 hosts failed; failed: {down}\n"
    assert "2000/2000" in finished.stderr
    assert "failed=10, round=3" in finished.stderr
