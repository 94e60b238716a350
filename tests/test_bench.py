"""`just bench` runs end to end (at a tiny scale: the figures are not checked
here; they come from `just bench` itself)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

NATIVE = ROOT / "bench/native/target/release/librust_lib_native.so"


def test_the_benchmark_runs_and_writes_its_report(tmp_path: Path) -> None:
    if not NATIVE.exists():
        pytest.fail(f"{NATIVE} is missing: run `just build-native`")
    done = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--rounds",
            "1",
            "--scale",
            "0.01",
            "--output",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "benchmarks.json").read_text())
    assert "start_procedure, 2 hosts, simulated network (1 down, 3 retries)" in figures["calls_us"]
    for workload, by_host in figures["calls_us"].items():
        assert set(by_host) == {"ctypes (native)", "naive wasmtime-py", "py_host"}, workload
    assert "| start_procedure, 10,000 hosts, dry run |" in (tmp_path / "BENCHMARKS.md").read_text()
    assert "py_host, default limits" in figures["configurations_us"]
    assert set(figures["concurrency"]) == {
        *(
            f"{kind}, {callers} concurrent"
            for kind in ("asyncio tasks", "threads")
            for callers in (1, 8, 64)
        ),
        "loop stall, steps on the loop",
        "loop stall, steps in a thread",
    }
