"""An exception at any point of py_host's own code where Python can raise
one from outside leaves everything whole: the pool lends again, nothing
leaks, and the next call works.

A signal handler's exception, or one set on the thread from outside, lands
in ordinary Python between two calls into WebAssembly (ABI v3), at the
points where CPython looks for them: as a Python function starts, as a call
of a C function returns, and at the jump back of a loop. Here one is raised,
through trace and profile functions, at each such point of a call's path in
turn, deterministically. tests/test_signals.py does the same at random with
real signals.
"""

from __future__ import annotations

import dis
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from conftest import tutorial_input

import py_host

PY_HOST = str(Path(py_host.__file__).parent)
JUMP_BACKWARD = dis.opmap.get("JUMP_BACKWARD", dis.opmap.get("JUMP_ABSOLUTE"))


class Interrupted(KeyboardInterrupt):
    """Raised at the chosen bytecode, as Ctrl-C or ``sys.exit`` would be."""


class TimedOut(Exception):
    """Raised at the chosen bytecode, as a signal-based timeout's would be."""


def interrupt_at(
    target: int, call: Callable[[], object], raised: type[BaseException]
) -> tuple[bool, BaseException | None]:
    """Run ``call``, raising ``raised`` at the ``target``-th point in
    py_host's own code where CPython may raise an exception from outside.
    Whether the call had that many points, and the exception if it came out
    of the call."""
    seen = 0

    def count(frame: FrameType) -> None:
        nonlocal seen
        if frame.f_code.co_filename.startswith(PY_HOST):
            seen += 1
            if seen == target:
                raise raised

    def trace(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            count(frame)
            frame.f_trace_opcodes = True
            return trace
        if event == "opcode" and frame.f_code.co_code[frame.f_lasti] == JUMP_BACKWARD:
            count(frame)
        return trace

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_return":
            count(frame)

    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        call()
    except BaseException as error:
        return True, error
    finally:
        sys.setprofile(None)
        sys.settrace(None)
    return seen >= target, None


def works_soon(rust: py_host.RustModule, call: Callable[[], object]) -> None:
    """``call`` returns within a few seconds: the pool did not lose its instance."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the next call waits for ever: the pool lost its instance"
    assert errors == []


def buffer_round_trip(rust: py_host.RustModule) -> None:
    reply = rust.start_procedure_buffer(json.dumps(tutorial_input()))
    reply.read()
    reply.free()


CALLS: dict[str, Callable[[py_host.RustModule], object]] = {
    "print_int": lambda rust: rust.print_int(1),
    "print_string": lambda rust: rust.print_string("x"),
    "a procedure with rounds": lambda rust: rust.start_procedure(tutorial_input()),
    "a reply buffer": buffer_round_trip,
}


@pytest.mark.parametrize("raised", [Interrupted, TimedOut])
@pytest.mark.parametrize("name", list(CALLS))
def test_an_exception_at_every_bytecode_of_a_call(
    name: str, raised: type[BaseException], capsys: Any
) -> None:
    call = CALLS[name]
    network = py_host.SimulatedNetwork(down={"server1"})
    with py_host.load(executor=network, max_instances=1) as rust:
        target = 0
        came_out = 0
        while True:
            reached, error = interrupt_at(target := target + 1, lambda: call(rust), raised)
            if not reached:
                break
            # The exception comes out unchanged, or, only an Exception and
            # only where it lands in what the caller gave py_host, is that
            # code's own: the executor's (the round fails) or sys.stdout's
            # (ModuleError "io"; README, "Signals").
            if raised is TimedOut and error is None:
                pass
            elif raised is TimedOut and isinstance(error, py_host.ModuleError):
                assert error.kind == "io"
                assert isinstance(error.__cause__, raised)
            else:
                assert isinstance(error, raised), f"{error!r} after bytecode {target}"
                came_out += 1
            # Kept meanwhile, as a caller logging it later would: its
            # traceback holds the frames of the interrupted call, and so
            # what they held (a lease, a reply buffer made for the caller).
            works_soon(rust, lambda: call(rust))
            call(rust)
            del error
            assert rust.live_allocations() == 0, f"a buffer leaked after bytecode {target}"
            assert len(rust._pool.live()) == 1
        assert came_out > 20, "the trace saw py_host's code"
    capsys.readouterr()
