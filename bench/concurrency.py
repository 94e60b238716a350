"""Concurrent procedures with an I/O-bound executor, for `just bench`: how
many procedures a second py_host serves with 1, 8 and 64 callers, from
asyncio (async executor, tasks) and from threads (sync executor), when each
attempt waits 20 ms; and how long a large procedure holds the event loop
with its steps on the loop and in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import py_host
from py_host import aio

ATTEMPT_SECONDS = 0.02
"""What each attempt of the executor waits, as a network call would."""
CALLERS = (1, 8, 64)
TWO_HOSTS = {
    "timeout": 10,
    "retries": 0,
    "action": "reboot",
    "host_list": ["server1", "server2"],
    "job_id": 1,
}
MANY_HOSTS = dict(TWO_HOSTS, host_list=[f"host{index}" for index in range(10_000)])


async def _attempt(host: str, action: str, timeout: int) -> bool:
    await asyncio.sleep(ATTEMPT_SECONDS)
    return True


def _wait(host: str, action: str, timeout: int) -> bool:
    time.sleep(ATTEMPT_SECONDS)
    return True


def async_throughput(wasm: Path, callers: int, seconds: float) -> float:
    """Procedures a second with ``callers`` tasks, each running one 2-host
    procedure after another for ``seconds``, on one event loop."""

    async def run() -> float:
        async with await py_host.load_async(wasm, executor=_attempt) as rust:
            await rust.start_procedure(TWO_HOSTS)
            done = 0

            async def caller(until: float) -> None:
                nonlocal done
                while time.perf_counter() < until:
                    await rust.start_procedure(TWO_HOSTS)
                    done += 1

            started = time.perf_counter()
            await asyncio.gather(*(caller(started + seconds) for _ in range(callers)))
            return done / (time.perf_counter() - started)

    return asyncio.run(run())


def thread_throughput(wasm: Path, callers: int, seconds: float) -> float:
    """Procedures a second with ``callers`` threads, as :func:`async_throughput`
    measures tasks, with a sync executor (py_host's default: a thread per
    attempt)."""
    with py_host.load(wasm, executor=_wait) as rust:
        rust.start_procedure(TWO_HOSTS)
        done = [0] * callers
        until = time.perf_counter() + seconds

        def caller(index: int) -> None:
            while time.perf_counter() < until:
                rust.start_procedure(TWO_HOSTS)
                done[index] += 1

        started = time.perf_counter()
        threads = [threading.Thread(target=caller, args=(index,)) for index in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done) / (time.perf_counter() - started)


def loop_stall_ms(wasm: Path, offload_bytes: int) -> float:
    """The longest the event loop went without running a ticking task, in
    ms, while a 10,000-host procedure ran, with steps run in a thread from
    ``offload_bytes`` of input (a huge value keeps them on the loop)."""

    async def run() -> float:
        async with await py_host.load_async(wasm, executor=_instant) as rust:
            await rust.start_procedure(MANY_HOSTS)
            longest = 0.0
            running = True

            async def tick() -> None:
                nonlocal longest
                last = time.perf_counter()
                while running:
                    await asyncio.sleep(0)
                    now = time.perf_counter()
                    longest = max(longest, now - last)
                    last = now

            ticker = asyncio.ensure_future(tick())
            await asyncio.sleep(0)
            kept, aio.OFFLOAD_BYTES = aio.OFFLOAD_BYTES, offload_bytes
            try:
                await rust.start_procedure(MANY_HOSTS)
            finally:
                aio.OFFLOAD_BYTES = kept
                running = False
            await ticker
            return longest * 1e3

    return asyncio.run(run())


class _Instant:
    """An async executor that answers every host ok at once."""

    async def run_round(self, round: py_host.Round) -> list[py_host.Outcome]:
        return [py_host.Outcome.ok()] * len(round.hosts)


_instant = _Instant()
