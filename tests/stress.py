"""Signals and asynchronous exceptions against every call of the module.

Run as a script (tests/test_signals.py runs each scenario in a process of
its own, with a hard timeout): the calling threads make thousands of calls
of all four functions, with and without an executor, while one scenario
raises exceptions into them as fast as it can. Then the exceptions stop,
and the module is checked. Prints one JSON line:

- ``outcomes``: how the calls ended: ``ok``, ``injected`` (the exception
  raised into the caller, also when a py_host.Error carries it as its cause),
  or ``error`` (any other py_host.Error, which no call here should raise);
- ``unexpected``: any other exception a call raised;
- ``live_allocations``, ``instances``: the modules' state afterwards;
- ``after``: what a call made afterwards printed and returned.

A crash or a hang is the process's own exit status, or its timeout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import io
import json
import operator
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from soak import TUTORIAL, TUTORIAL_JSON

import py_host


class Injected(Exception):
    """What the scenarios' handlers and threads raise."""


INJECTED: tuple[type[BaseException], ...] = (Injected, KeyboardInterrupt, SystemExit)
SIGNALS = (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)
CALL = operator.methodcaller("__call__")
"""Calls its argument, in C: no Python bytecode for an exception to land on."""


class Modules:
    """The module without an executor (dry runs) and with one."""

    def __init__(self, instances: int) -> None:
        self.plain = py_host.load(max_instances=instances)
        network = py_host.SimulatedNetwork(down={"server1"})
        self.granted = py_host.load(executor=network, max_instances=instances)

    def calls(self) -> list[Callable[[int], object]]:
        """Every function of the tutorial, each way it can be called."""

        def buffer(_: int) -> None:
            reply = self.plain.start_procedure_buffer(TUTORIAL_JSON)
            reply.read()
            reply.free()

        return [
            lambda i: self.plain.print_string("hello from the stress test " * 4),
            self.plain.print_int,
            lambda i: self.plain.start_procedure(TUTORIAL),
            lambda i: self.granted.start_procedure(TUTORIAL),
            buffer,
            lambda i: self.granted.start_procedure_json(TUTORIAL_JSON),
        ]


def outcome(call: Callable[[int], object], i: int) -> str:
    try:
        call(i)
        return "ok"
    except INJECTED:
        return "injected"
    except py_host.BufferFreed:
        # With several threads, another's interrupted call can discard the
        # instance a reply buffer lives on, and the buffer with it.
        return "buffer discarded"
    except py_host.Error as error:
        return "injected" if isinstance(error.__cause__, INJECTED) else f"error {error!r}"


def make_calls(
    calls: list[Callable[[int], object]],
    count: int,
    results: list[str],
    arm: list[Callable[[], object]],
    disarm: list[Callable[[], object]],
) -> None:
    """``arm``, then ``count`` calls, each outcome in ``results``: an
    exception that lands between two calls is let go, and the calls go on.
    Then ``disarm``. From the first exception to the last, none can land
    outside a ``try``, but for the jump back of the loops below, which two
    levels of them make too unlikely to matter."""
    done = [0]

    def one(i: int) -> None:
        try:
            results.append(outcome(calls[i % len(calls)], i))
        except INJECTED:
            results.append("injected")
        except BaseException as error:
            results.append(f"unexpected {error!r}")
        done[0] = i + 1

    finished = [False]

    def until_disarmed() -> None:
        while not finished[0]:
            try:
                # Iterated in C: a loop of Python's own would give an
                # exception one more place to land outside every try. So are
                # arming and disarming: their C functions run with no Python
                # in between.
                collections.deque(map(CALL, arm), maxlen=0)
                collections.deque(map(one, range(done[0], count)), maxlen=0)
                collections.deque(map(CALL, disarm), maxlen=0)
                time.sleep(0.05)  # an exception already on its way lands here
                finished[0] = True
            except INJECTED:
                pass  # it landed between two calls: nothing here calls, for none to land on

    while not finished[0]:
        # Not contextlib.suppress: its __exit__ is Python, a place to land.
        try:  # noqa: SIM105
            until_disarmed()
        except INJECTED:
            pass


def repeatedly(action: Callable[[], None], stop: threading.Event, every: float) -> threading.Thread:
    """A thread doing ``action`` every ``every`` seconds until ``stop``."""

    def loop() -> None:
        while not stop.is_set():
            time.sleep(every)
            action()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def raising(exception: type[BaseException]) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        raise exception

    return handler


def exit_now(signum: int, frame: Any) -> None:
    sys.exit(3)


def prepare_scenario(
    name: str, targets: list[int], every: float, stop: threading.Event
) -> tuple[list[Callable[[], object]], list[Callable[[], object]]]:
    """Set up the exceptions to raise into the calling threads: what arms
    them, and what disarms them, as C functions (see :func:`make_calls`)."""
    pid = os.getpid()
    armed: list[bool] = []
    arm: list[Callable[[], object]] = [partial(armed.append, True)]
    disarm: list[Callable[[], object]] = [
        *(partial(signal.signal, signum, signal.SIG_IGN) for signum in SIGNALS),
        armed.clear,
    ]

    def kill(signum: int) -> Callable[[], None]:
        def send() -> None:
            if armed:
                os.kill(pid, signum)

        return send

    if name == "alarm":
        signal.signal(signal.SIGALRM, raising(Injected))
        arm.append(partial(signal.setitimer, signal.ITIMER_REAL, every, every))
        disarm.append(partial(signal.setitimer, signal.ITIMER_REAL, 0))
    elif name == "sigterm-exit":
        signal.signal(signal.SIGTERM, exit_now)
        repeatedly(kill(signal.SIGTERM), stop, every)
    elif name == "sigint-handler":
        signal.signal(signal.SIGINT, raising(Injected))
        repeatedly(kill(signal.SIGINT), stop, every)
    elif name == "sigint-default":
        repeatedly(kill(signal.SIGINT), stop, every)
    elif name == "async-exception":
        turn = iter(range(1 << 62))

        def raise_into_a_caller() -> None:
            if armed:
                target = targets[next(turn) % len(targets)]
                set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
                set_async(ctypes.c_ulong(target), ctypes.py_object(Injected))

        repeatedly(raise_into_a_caller, stop, every)
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    return arm, disarm


def wait_for(finished: list[None], count: int) -> None:
    """Wait until ``count`` workers have said they finished (not with
    Thread.join, which an exception can make mark a running thread stopped)."""
    while len(finished) < count:
        time.sleep(0.01)


def work(
    calls: list[Callable[[int], object]], count: int, results: list[str], finished: list[None]
) -> None:
    make_calls(calls, count, results, [], [])
    finished.append(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario")
    parser.add_argument("--calls", type=int, default=3000, help="calls per thread")
    parser.add_argument("--threads", type=int, default=1, help="calling threads")
    parser.add_argument("--instances", type=int, default=1, help="max_instances")
    parser.add_argument("--every", type=float, default=0.0007, help="seconds between exceptions")
    args = parser.parse_args()

    modules = Modules(args.instances)
    calls = modules.calls()
    sys.stdout = io.StringIO()
    results: list[list[str]] = [[] for _ in range(args.threads)]
    finished: list[None] = []
    workers = [
        threading.Thread(target=work, args=(calls, args.calls, results[n], finished), daemon=True)
        for n in range(1, args.threads)
    ]
    for worker in workers:
        worker.start()
    targets = [threading.get_ident()] + [worker.ident or 0 for worker in workers]
    stop = threading.Event()
    arm, disarm = prepare_scenario(args.scenario, targets, args.every, stop)
    make_calls(calls, args.calls, results[0], arm, disarm)
    stop.set()
    wait_for(finished, len(workers))
    sys.stdout = sys.__stdout__

    outcomes = collections.Counter(
        "error" if result.startswith("error") else result
        for thread in results
        for result in thread
        if not result.startswith("unexpected")
    )
    unexpected = [r for thread in results for r in thread if r.startswith(("unexpected", "error"))]
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        modules.plain.print_int(7)
        reply = modules.granted.start_procedure(TUTORIAL)
    summary = {
        "outcomes": outcomes,
        "unexpected": unexpected[:10],
        "calls": [len(thread) for thread in results],
        "live_allocations": modules.plain.live_allocations() + modules.granted.live_allocations(),
        "instances": max(len(modules.plain._pool.live()), len(modules.granted._pool.live())),
        "after": [captured.getvalue(), reply.failed_hosts, reply.failures[0].attempts],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
