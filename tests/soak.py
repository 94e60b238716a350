"""A long run of mixed calls, valid and invalid, through all four functions,
reporting linear memory, live buffers and the process's RSS at the start
and the end. `just soak` runs a million; test_soak.py a CI-sized run."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import py_host

TUTORIAL = {
    "timeout": 10,
    "retries": 3,
    "action": "reboot",
    "host_list": ["server1", "server2"],
    "job_id": 1,
}
TUTORIAL_JSON = json.dumps(TUTORIAL)


@dataclass(frozen=True)
class Reading:
    """What the module and the process hold at one moment."""

    pages: int
    live_allocations: int
    rss_bytes: int

    def __str__(self) -> str:
        return (
            f"{self.pages} pages of linear memory, {self.live_allocations} live buffers, "
            f"RSS {self.rss_bytes / 2**20:.1f} MiB"
        )


def rss_bytes() -> int:
    """The process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def read(rust: py_host.RustModule) -> Reading:
    return Reading(rust.memory_pages, rust.live_allocations(), rss_bytes())


def double_free(rust: py_host.RustModule) -> None:
    reply = rust.start_procedure_buffer(TUTORIAL_JSON)
    reply.read()
    reply.free()
    reply.free()


Operation = tuple[Callable[[], object], "type[py_host.Error] | None"]


def operations(rust: py_host.RustModule) -> list[Operation]:
    """One of each kind of call, with the error it must raise (about half are
    refused); none of these errors discards the instance."""
    return [
        (lambda: rust.print_string("Python says hi inside Rust!"), None),
        (lambda: rust.print_string(b"invalid \xff UTF-8"), py_host.InvalidInput),
        (lambda: rust.print_int(2), None),
        (lambda: rust.print_int(2**40), py_host.InvalidInput),
        (lambda: rust.start_procedure(TUTORIAL), None),
        (lambda: rust.start_procedure({**TUTORIAL, "host_list": ["a", "A"]}), py_host.InvalidInput),
        (
            lambda: rust.start_procedure_json(TUTORIAL_JSON.replace("10", "0", 1)),
            py_host.InvalidInput,
        ),
        (lambda: rust.start_procedure_json(b"\x00 not json"), py_host.InvalidInput),
        (lambda: double_free(rust), py_host.BufferFreed),
    ]


def perform(operation: Operation) -> None:
    """Run an operation; anything but the error it must raise is a failure."""
    call, expected = operation
    try:
        call()
    except py_host.Error as error:
        if expected is None or not isinstance(error, expected):
            raise
    else:
        if expected is not None:
            raise AssertionError(f"{call} did not raise {expected.__name__}")


def soak(calls: int, *, report: Callable[[str], None] = print) -> tuple[Reading, Reading]:
    """Make ``calls`` mixed calls after a warm-up; the readings before and after."""
    network = py_host.SimulatedNetwork(down={"server1"})
    with (
        py_host.load(executor=network) as rust,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        cycle = itertools.cycle(operations(rust))
        for operation in itertools.islice(cycle, 2_000):
            perform(operation)
        start = read(rust)
        instances = rust._pool.live()
        report(f"start: {start}")
        started = time.perf_counter()
        for done, operation in enumerate(itertools.islice(cycle, calls), 1):
            perform(operation)
            if done % 100_000 == 0:
                report(f"{done:,} calls: {read(rust)}")
        seconds = time.perf_counter() - started
        end = read(rust)
        if rust._pool.live() != instances:
            raise AssertionError("an instance was replaced: a call trapped")
        report(f"end:   {end}")
        report(f"{calls:,} calls in {seconds:.1f} s ({seconds / calls * 1e6:.0f} µs a call)")
        return start, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    report = print_now
    start, end = soak(args.calls, report=report)
    grew = end.pages > start.pages or end.live_allocations > 0
    if grew:
        raise SystemExit("memory grew: something leaks")


def print_now(line: str) -> None:
    # stdout is redirected to /dev/null while soaking: report on the real one.
    os.write(1, (line + "\n").encode())


if __name__ == "__main__":
    main()
