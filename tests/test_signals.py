"""Signals and asynchronous exceptions never crash or wedge the process.

No Python code runs while WebAssembly is on the stack (ABI v3), so whatever
a signal handler or another thread raises lands in ordinary Python between
two calls into the module. Each scenario runs tests/stress.py in a process of
its own, with a hard timeout: thousands of calls of all four functions, with
and without an executor, while exceptions are raised into the callers every
millisecond or so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT

CALLS = 2000
"""Calls per calling thread: enough that hundreds are interrupted."""
SCENARIOS = ["alarm", "sigterm-exit", "sigint-handler", "sigint-default", "async-exception"]


def stress(scenario: str, *, threads: int, instances: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests/stress.py"),
            scenario,
            f"--calls={CALLS}",
            f"--threads={threads}",
            f"--instances={instances}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-3000:]}"
    summary: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    summary["stderr"] = done.stderr
    return summary


@pytest.mark.parametrize(("threads", "instances"), [(1, 1), (3, 2)], ids=["one", "threads"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_exceptions_raised_into_callers_never_crash_hang_or_leak(
    scenario: str, threads: int, instances: int
) -> None:
    summary = stress(scenario, threads=threads, instances=instances)
    outcomes = summary["outcomes"]
    assert summary["unexpected"] == [], "each call returns, or raises what was raised into it"
    if threads == 1:
        assert "buffer discarded" not in outcomes, "only another thread's call can discard it"
    assert all(calls >= CALLS for calls in summary["calls"]), summary["calls"]
    assert outcomes.get("injected", 0) >= 20, f"the scenario interrupted too few calls: {outcomes}"
    assert outcomes.get("ok", 0) >= threads * CALLS // 4, f"too few calls got through: {outcomes}"
    assert summary["live_allocations"] == 0
    assert 1 <= summary["instances"] <= instances
    # The next calls work: print_int's line, and the tutorial's procedure.
    assert summary["after"] == ["Python gave us number 7\n", ["server1"], 4]
    # (A finalizer can still print "Exception ignored" for an exception that
    # landed in it: the Store of an instance lost to an exception is freed by
    # wasmtime-py's __del__, which is Python code too.)
    assert "Fatal Python error" not in summary["stderr"]
