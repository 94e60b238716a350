"""Hostile modules, written in WAT, that try to get past the sandbox: each
is stopped with a clear error, and the process stays well."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ABI_FUNCTIONS,
    ABI_VERSION_FUNCTION,
    FAULTS_WASM,
    module_file,
    run_python,
    tutorial_input,
)

import py_host


def replace_export(name: str, body: str) -> str:
    """The ABI's exports and version with ``name`` replaced by ``body``."""
    kept = [line for line in ABI_FUNCTIONS.splitlines() if f'(export "{name}")' not in line]
    return "\n".join(kept) + ABI_VERSION_FUNCTION + body


def test_a_table_cannot_grow_without_bound(tmp_path: Path) -> None:
    # table.grow answers -1 past the limit; this print_string traps unless it does.
    wat = replace_export(
        "print_string",
        "(table 1 funcref)"
        '(func (export "print_string") (param i32 i32) (result i64)'
        " (if (i32.ne (table.grow (ref.null func) (i32.const 200000000)) (i32.const -1)) (then unreachable))"
        " i64.const 0)",
    )
    with py_host.load(module_file(tmp_path, wat)) as rust:
        rust.print_string("x")


def test_a_reply_inside_the_hosts_own_input_buffer_is_refused(tmp_path: Path) -> None:
    # Freeing such a reply would free the buffer py_host keeps for its inputs.
    wat = replace_export(
        "start_procedure_into",
        '(func (export "start_procedure_into")'
        " (param $p i32) (param $l i32) (param $out i32) (param $cap i32) (result i64)"
        " (i64.or (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))"
        " (i64.extend_i32_u (local.get $cap))))",
    )
    with (
        py_host.load(module_file(tmp_path, wat)) as rust,
        pytest.raises(py_host.AbiViolation, match="inside the host's input buffer"),
    ):
        rust.start_procedure(tutorial_input())


def test_a_module_with_a_second_memory_is_refused(tmp_path: Path) -> None:
    wat = ABI_FUNCTIONS + ABI_VERSION_FUNCTION + "(memory 1)"
    with pytest.raises(py_host.LoadError, match="multi"):
        py_host.load(module_file(tmp_path, wat))


def printing_to(output_ptr: int, output_len: int) -> str:
    """A module whose print_string says, in its outbox (at 64, as
    conftest's ``outbox`` export says), that it printed this."""
    return replace_export(
        "print_string",
        '(func (export "print_string") (param i32 i32) (result i64)'
        f" (i32.store (i32.const 64) (i32.const {output_ptr}))"
        f" (i32.store (i32.const 68) (i32.const {output_len}))"
        " i64.const 0)",
    )


def test_output_claiming_a_gigabyte_is_refused_before_any_copy(tmp_path: Path) -> None:
    with py_host.load(module_file(tmp_path, printing_to(0, 1 << 30))) as rust:
        with pytest.raises(py_host.LimitExceeded, match="1073741824 bytes") as raised:
            rust.print_string("x")
        assert raised.value.limit == "output"


def test_output_outside_memory_is_an_abi_violation(tmp_path: Path, capsys: Any) -> None:
    with (
        py_host.load(module_file(tmp_path, printing_to(65536 - 4, 8))) as rust,
        pytest.raises(py_host.AbiViolation, match="output lies outside memory"),
    ):
        rust.print_string("x")
    assert capsys.readouterr().out == ""


def test_an_outbox_outside_memory_is_refused_at_load(tmp_path: Path) -> None:
    wat = ABI_FUNCTIONS.replace("i32.const 64)", "i32.const 65530)") + ABI_VERSION_FUNCTION
    with pytest.raises(py_host.LoadError, match="outbox"):
        py_host.load(module_file(tmp_path, wat))


def test_a_limit_hit_while_loading_is_named(tmp_path: Path) -> None:
    wat = (
        ABI_FUNCTIONS
        + ABI_VERSION_FUNCTION
        + "(func $start (loop $forever (br $forever))) (start $start)"
    )
    limits = py_host.Limits(deadline_seconds=0.2)
    with pytest.raises(py_host.LoadError, match="deadline"):
        py_host.load(module_file(tmp_path, wat), limits=limits)


def test_time_spent_writing_output_is_not_the_modules() -> None:
    class SlowStdout(io.StringIO):
        def write(self, text: str) -> int:
            time.sleep(0.5)
            return super().write(text)

    with py_host.load(limits=py_host.Limits(deadline_seconds=0.2)) as rust:
        slow = SlowStdout()
        with contextlib.redirect_stdout(slow):
            rust.print_string("slowly")
        assert slow.getvalue() == "slowly\n"


def test_deep_recursion_traps_even_on_a_small_thread_stack(tmp_path: Path) -> None:
    wat = replace_export(
        "print_string",
        "(func $down (param i32) (result i32) (i32.add (call $down (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))"
        '(func (export "print_string") (param i32 i32) (result i64) (drop (call $down (i32.const 0))) i64.const 0)',
    )
    path = module_file(tmp_path, wat)
    done = run_python(
        f"""
        import threading, py_host
        threading.stack_size(512 * 1024)
        result = []
        def work():
            rust = py_host.load({str(path)!r})
            try:
                rust.print_string("x")
            except py_host.ModuleTrap as trap:
                result.append(str(trap))
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        print(result)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "call stack exhausted" in done.stdout


def test_the_deadline_still_works_in_a_forked_child() -> None:
    done = run_python(
        f"""
        import os, py_host
        rust = py_host.load({str(FAULTS_WASM)!r}, limits=py_host.Limits(deadline_seconds=0.3))
        rust.print_string("warm the clock in the parent")
        child = os.fork()
        if child == 0:
            try:
                rust.print_string("fault:loop")
            except py_host.DeadlineExceeded:
                os._exit(42)
            os._exit(1)
        _, status = os.waitpid(child, 0)
        print(os.waitstatus_to_exitcode(status))
        """
    )
    assert done.stdout.strip().splitlines()[-1] == "42", done.stdout + done.stderr


def test_modules_in_threads_each_keep_their_own_deadline() -> None:
    done = run_python(
        f"""
        import threading, time, py_host
        results = {{}}
        def looping(i):
            with py_host.load({str(FAULTS_WASM)!r}, limits=py_host.Limits(deadline_seconds=0.3)) as rust:
                try:
                    rust.print_string("fault:loop")
                except py_host.DeadlineExceeded:
                    results[("loop", i)] = "deadline"
        def benign(i):
            with py_host.load(limits=py_host.Limits(deadline_seconds=5)) as rust:
                for _ in range(50):
                    rust.start_procedure(dict(timeout=1, retries=0, action="a", host_list=["h"], job_id=i))
                results[("benign", i)] = "ok"
        threads = [threading.Thread(target=f, args=(i,)) for i in range(3) for f in (looping, benign)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(sorted(results.values()))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(["deadline"] * 3 + ["ok"] * 3)


@pytest.mark.parametrize(
    "limits",
    [
        {"deadline_seconds": float("inf")},
        {"deadline_seconds": True},
        {"max_fuel": 2**64},
        {"max_memory_bytes": 2**64},
        {"max_memory_bytes": 1.5},
    ],
)
def test_limits_out_of_range_are_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(limits))):
        py_host.Limits(**limits)


@pytest.mark.parametrize("busy_threads", [8, 16])
def test_the_deadline_holds_while_python_threads_keep_the_gil_busy(busy_threads: int) -> None:
    # The epoch clock is a Python thread: with busy threads it gets the GIL
    # far less often than every tick, and catches up on what it missed.
    # Without that, a 1 s deadline here fired after 8 s (8 threads), 14 s (16).
    done = run_python(
        f"""
        import threading, time, py_host
        stop = threading.Event()
        def busy():
            count = 0
            while not stop.is_set():
                count += 1
        rust = py_host.load({str(FAULTS_WASM)!r}, limits=py_host.Limits(deadline_seconds=1.0))
        for _ in range({busy_threads}):
            threading.Thread(target=busy, daemon=True).start()
        started = time.monotonic()
        try:
            rust.print_string("fault:loop")
        except py_host.DeadlineExceeded:
            print(time.monotonic() - started)
        stop.set()
        """
    )
    assert done.returncode == 0, done.stderr
    elapsed = float(done.stdout)
    assert 1.0 <= elapsed < 3.0, f"a 1 s deadline fired after {elapsed:.2f} s"
