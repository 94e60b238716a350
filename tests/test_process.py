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


# Each way of running out of memory: the host's buffer for a large input, the
# module's allocations while it parses (which go through Rust's handler for a
# failed allocation, whose message std writes with WASI fd_write), a module
# that grows until it is stopped, one that prints without end.
OUT_OF_MEMORY = {
    "a large input": ("print_string", "'x' * (3 << 20)", "could not allocate 3145728 bytes"),
    "a large procedure": (
        "start_procedure_json",
        "'{\"host_list\": [' + ','.join(f'\"h{i}\"' for i in range(100_000)) + ']}'",
        "the module ran out of memory: it asked for",
    ),
    "a module that grows": ("print_string", "'fault:grow'", "the module ran out of memory"),
    "endless output": ("print_string", "'fault:endless-output'", "the module ran out of memory"),
}


@pytest.mark.parametrize(
    ("call", "argument", "explained"), OUT_OF_MEMORY.values(), ids=OUT_OF_MEMORY
)
def test_a_memory_limit_is_reported_by_the_exception_alone(
    call: str, argument: str, explained: str
) -> None:
    """The process's real standard output and error (its file descriptors,
    not sys.stdout) carry nothing of the module's: no "memory allocation of
    N bytes failed", no backtrace note, even with RUST_BACKTRACE set."""
    source = f"""
        import py_host
        rust = py_host.load({str(FAULTS_WASM)!r}, limits=py_host.Limits(max_memory_bytes=4 << 20))
        try:
            rust.{call}({argument})
        except py_host.LimitExceeded as error:
            print("caught:", error.limit, error)
        rust.print_string("still here")
        """
    done = run_python(source, RUST_BACKTRACE="1")
    assert done.returncode == 0, done.stderr
    caught, still_here = done.stdout.splitlines()
    assert caught.startswith("caught: memory "), caught
    assert explained in caught
    assert still_here == "still here"
    assert done.stderr == ""
