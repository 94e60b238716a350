"""Whole Python processes: a script that loads the module at top level exits
cleanly with its own status, whatever way it ends."""

from __future__ import annotations

import pytest
from conftest import FAULTS_WASM, run_python

SCRIPT = """
import sys
import py_host

rust = py_host.load()
rust.print_string("hello from rust")
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("", 0),
        ("sys.exit(3)", 3),
        ("raise RuntimeError('boom')", 1),
        ("import os; os.environ['X'] = '1'", 0),
    ],
)
def test_a_script_exits_with_its_own_status_and_a_clean_stderr(ending: str, status: int) -> None:
    done = run_python(SCRIPT.format(ending=ending))
    assert done.returncode == status, done.stderr
    assert done.stdout == "hello from rust\n"
    stderr = done.stderr
    if "RuntimeError" in ending:
        assert stderr.rstrip().endswith("RuntimeError: boom")
        stderr = ""
    assert stderr == ""


def test_output_keeps_order_with_pythons_when_piped() -> None:
    done = run_python(
        """
        import py_host
        rust = py_host.load()
        for i in range(3):
            print("python", i)
            rust.print_int(i)
        """
    )
    assert done.stdout.splitlines() == [
        "python 0",
        "Python gave us number 0",
        "python 1",
        "Python gave us number 1",
        "python 2",
        "Python gave us number 2",
    ]


def test_a_trap_is_an_exception_even_under_faulthandler() -> None:
    # faulthandler's signal handlers, installed after wasmtime's, used to
    # turn the first trap into "Fatal Python error: Illegal instruction".
    done = run_python(
        f"""
        import faulthandler
        import py_host
        rust = py_host.load({str(FAULTS_WASM)!r})
        faulthandler.enable()
        try:
            rust.print_string("fault:panic")
        except py_host.ModuleTrap as trap:
            print("caught:", trap.panic_message.splitlines()[-1])
        rust.print_string("still here")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "caught: injected panic: the host asked for it\nstill here\n"
    assert done.stderr == ""


def test_ctrl_c_during_calls_never_crashes_the_process() -> None:
    # Interrupts every millisecond while the module prints: each call
    # succeeds or raises KeyboardInterrupt; none escapes a host function's
    # C callback, where it would leave wasmtime a garbage trap pointer.
    done = run_python(
        """
        import _thread, collections, io, signal, sys, threading, time, py_host
        rust = py_host.load(max_instances=1)
        sys.stdout = io.StringIO()
        stop = threading.Event()
        def interrupt():
            while not stop.is_set():
                time.sleep(0.001)
                _thread.interrupt_main()
        interrupter = threading.Thread(target=interrupt, daemon=True)
        interrupter.start()
        seen = collections.Counter()
        end = time.monotonic() + 2
        while time.monotonic() < end:
            try:
                try:
                    rust.print_string("hello " * 50)
                    seen["ok"] += 1
                except KeyboardInterrupt:
                    seen["interrupted"] += 1
            except KeyboardInterrupt:
                pass
        # The interrupts go on until the thread sees stop: any bytecode here
        # may raise one, so stopping is retried until it is done.
        while True:
            try:
                stop.set()
                interrupter.join()
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                break
            except KeyboardInterrupt:
                pass
        sys.stdout = sys.__stdout__
        print(sorted(seen))
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['interrupted', 'ok']"
    assert "ctypes callback" not in done.stderr
