"""A misbehaving module (built with the `faults` feature) raises a clear
py_host error, and the next call runs on a fresh instance."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import FAULTS_WASM, run_python, tutorial_input

import py_host
from py_host._transport import OutOfBounds, check_bounds


def test_a_panic_raises_module_trap_with_the_panic_message(
    faulty: py_host.RustModule, capsys: Any
) -> None:
    with pytest.raises(py_host.ModuleTrap) as raised:
        faulty.print_string("fault:panic")
    assert raised.value.panic_message is not None
    assert "injected panic: the host asked for it" in raised.value.panic_message
    assert "src/faults.rs" in raised.value.panic_message
    faulty.print_string("alive again")
    assert capsys.readouterr().out == "alive again\n"


@pytest.mark.parametrize("fault", ["fault:reply-out-of-bounds", "fault:reply-not-live"])
def test_a_bad_reply_raises_abi_violation(faulty: py_host.RustModule, fault: str) -> None:
    with pytest.raises(py_host.AbiViolation):
        faulty.print_string(fault)
    assert faulty.start_procedure(tutorial_input()).dry_run
    assert faulty.live_allocations() == 0


@pytest.mark.parametrize(
    "fault", ["fault:reply-out-of-bounds", "fault:reply-not-live", "fault:reply-in-place-too-long"]
)
def test_a_bad_procedure_reply_raises_abi_violation(faulty: py_host.RustModule, fault: str) -> None:
    with pytest.raises(py_host.AbiViolation):
        faulty.start_procedure_json(fault)
    assert faulty.start_procedure(tutorial_input()).dry_run
    assert faulty.live_allocations() == 0


@pytest.mark.parametrize(
    "fault", ["fault:reply-garbage", "fault:reply-ok-not-output", "fault:reply-duplicate-ok"]
)
def test_a_reply_that_is_not_the_documented_json_raises_abi_violation(
    faulty: py_host.RustModule, fault: str
) -> None:
    instances = faulty._pool.live()
    with pytest.raises(py_host.AbiViolation):
        faulty.start_procedure_json(fault)
    assert not set(faulty._pool.live()) & set(instances), "the instance that broke the ABI is gone"
    with pytest.raises(py_host.AbiViolation):
        faulty.print_string("fault:reply-garbage")
    with pytest.raises(py_host.AbiViolation):
        faulty.start_procedure_json(fault)
    assert faulty.live_allocations() == 0


def fault_input(action: str) -> str:
    """An input whose action makes the faults module misbehave."""
    return json.dumps(tutorial_input(action=action, timeout=1, retries=0, host_list=["a"]))


@pytest.mark.parametrize(
    ("action", "problem"),
    [
        ("fault-round-garbage", "invalid request"),
        ("fault-round-bad-host", "'-oProxyCommand=x' that the input does not allow"),
        ("fault-round-no-host", "a round with no hosts"),
        ("fault-round-other-host", "'elsewhere' that the input does not allow"),
        ("fault-round-other-action", "asked to run 'reboot'"),
        ("fault-round-forever", "asked for attempt 1; this is round 2"),
    ],
)
def test_the_executor_only_runs_what_the_input_asked_for(
    tmp_path: Path, action: str, problem: str
) -> None:
    marker = tmp_path / "ran"
    executor = py_host.CommandExecutor(
        {action: ["touch", str(marker)], "reboot": ["touch", str(marker)]}
    )
    with py_host.load(FAULTS_WASM, executor=executor) as faulty:
        with pytest.raises(py_host.AbiViolation, match=problem):
            faulty.start_procedure_json(fault_input(action))
        ran_for_the_fault = marker.exists()
        assert faulty.start_procedure(tutorial_input()).result == "success"
    if action != "fault-round-forever":
        assert not ran_for_the_fault
    assert marker.exists(), "a valid procedure afterwards runs"


def test_a_round_outside_a_procedure_is_refused() -> None:
    executor = py_host.SimulatedNetwork()
    with py_host.load(FAULTS_WASM, executor=executor) as faulty:
        with pytest.raises(py_host.AbiViolation, match="print_string replied with an invalid"):
            faulty.print_string("fault:round-other-action")
        assert faulty.start_procedure(tutorial_input()).result == "success"


def test_a_reply_buffer_does_not_outlive_its_instance(faulty: py_host.RustModule) -> None:
    reply = faulty.start_procedure_buffer(json.dumps(tutorial_input()))
    with pytest.raises(py_host.ModuleTrap):
        faulty.print_string("fault:panic")
    with pytest.raises(py_host.BufferFreed, match="discarded"):
        reply.read()
    with pytest.raises(py_host.BufferFreed):
        reply.free()


def test_every_py_host_error_is_one_base_class() -> None:
    for error in [
        py_host.InvalidInput,
        py_host.ModuleError,
        py_host.ModuleTrap,
        py_host.AbiViolation,
        py_host.BufferFreed,
        py_host.LoadError,
        py_host.ClosedError,
        py_host.LimitExceeded,
        py_host.ReentrancyError,
    ]:
        assert issubclass(error, py_host.Error)


# Limits: each fault is stopped at its limit, and the next call works.


def load_faulty(**limits: Any) -> py_host.RustModule:
    return py_host.load(FAULTS_WASM, limits=py_host.Limits(**limits))


def assert_recovers(rust: py_host.RustModule) -> None:
    assert rust.start_procedure(tutorial_input()).dry_run
    assert rust.live_allocations() == 0


def test_an_endless_loop_is_stopped_at_the_deadline() -> None:
    with load_faulty(deadline_seconds=0.3) as rust:
        started = time.monotonic()
        with pytest.raises(py_host.DeadlineExceeded) as raised:
            rust.print_string("fault:loop")
        assert time.monotonic() - started < 10
        assert raised.value.limit == "deadline"
        assert isinstance(raised.value, TimeoutError)
        assert_recovers(rust)


def test_each_call_gets_its_whole_deadline_after_the_clock_ran_for_another() -> None:
    # py_host sets a deadline again only when the epoch clock has ticked: here
    # it ticks about 30 times for another module's slow executor in between.
    slow = py_host.load(executor=lambda host, action, timeout: time.sleep(0.3) is None)
    with slow, load_faulty(deadline_seconds=0.05) as rust:
        assert rust.start_procedure(tutorial_input()).dry_run
        assert slow.start_procedure(tutorial_input(host_list=["a"], retries=0)).result == "success"
        assert rust.start_procedure(tutorial_input()).dry_run
        started = time.monotonic()
        with pytest.raises(py_host.DeadlineExceeded):
            rust.print_string("fault:loop")
        assert time.monotonic() - started >= 0.04


def test_what_was_left_of_a_deadline_does_not_carry_over_to_the_next_call() -> None:
    class NearlyOutOfTime:
        """Leaves the procedure's next step 1 ms of its deadline."""

        def run_round(self, round: py_host.Round) -> list[py_host.Outcome]:
            rust._pool.live()[0]._seconds_left = 0.001
            return [py_host.Outcome.ok()] * len(round.hosts)

    with py_host.load(
        FAULTS_WASM,
        executor=NearlyOutOfTime(),
        limits=py_host.Limits(deadline_seconds=0.1),
        max_instances=1,
    ) as rust:
        time.sleep(0.05)  # the clock stops when no call runs: its count stays
        rust.start_procedure(tutorial_input(host_list=["a"], retries=0))
        started = time.monotonic()
        with pytest.raises(py_host.DeadlineExceeded):
            rust.print_string("fault:loop")
        assert time.monotonic() - started >= 0.08, "the loop got less than its whole 0.1 s"


def test_an_endless_loop_is_stopped_by_fuel() -> None:
    with load_faulty(max_fuel=10_000_000, deadline_seconds=None) as rust:
        with pytest.raises(py_host.LimitExceeded) as raised:
            rust.print_string("fault:loop")
        assert raised.value.limit == "fuel"
        assert_recovers(rust)


def test_too_little_fuel_stops_even_a_good_call() -> None:
    with load_faulty(max_fuel=1_000) as rust, pytest.raises(py_host.LimitExceeded, match="fuel"):
        rust.start_procedure(tutorial_input())


def test_a_memory_bomb_is_stopped_at_the_memory_limit() -> None:
    with load_faulty(max_memory_bytes=8 << 20) as rust:
        with pytest.raises(py_host.LimitExceeded) as raised:
            rust.print_string("fault:grow")
        assert raised.value.limit == "memory"
        assert "of its 8388608 in use" in str(raised.value)
        assert_recovers(rust)


def test_an_input_larger_than_the_memory_limit_is_refused() -> None:
    with load_faulty(max_memory_bytes=4 << 20) as rust:
        with pytest.raises(py_host.LimitExceeded) as raised:
            rust.print_string("x" * (8 << 20))
        assert raised.value.limit == "memory"
        assert_recovers(rust)


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        # Rust's stack lies at the bottom of linear memory: overflowing it
        # runs below address 0, which traps instead of corrupting data.
        ("fault:stack-overflow", "out of bounds memory access"),
        ("fault:read-out-of-bounds", "out of bounds memory access"),
        ("fault:exit", "called wasi_snapshot_preview1::proc_exit, which no module is granted"),
    ],
)
def test_a_trap_says_what_happened(faulty: py_host.RustModule, fault: str, cause: str) -> None:
    with pytest.raises(py_host.ModuleTrap, match=cause):
        faulty.print_string(fault)
    assert_recovers(faulty)


@pytest.mark.parametrize(
    ("fault", "limit"), [("fault:huge-output", "output"), ("fault:endless-output", "memory")]
)
def test_output_is_stopped_at_its_limit(capsys: Any, fault: str, limit: str) -> None:
    # Output waits in the module's memory until the call returns: output
    # without end runs the module out of memory.
    with load_faulty(max_output_bytes=64 << 10, deadline_seconds=30) as rust:
        started = time.monotonic()
        with pytest.raises(py_host.LimitExceeded) as raised:
            rust.print_string(fault)
        assert time.monotonic() - started < 20, "stopped at the limit, not at the deadline"
        assert raised.value.limit == limit
        assert capsys.readouterr().out == "", "nothing of it is printed"
        assert_recovers(rust)


def test_a_reply_larger_than_the_limit_is_refused() -> None:
    with load_faulty(max_reply_bytes=1 << 20) as rust:
        with pytest.raises(py_host.LimitExceeded) as raised:
            rust.start_procedure_json("fault:reply-2mib")
        assert raised.value.limit == "reply"
        assert_recovers(rust)


def test_a_limit_is_not_hidden_by_an_error_reply_after_it(capsys: Any) -> None:
    with load_faulty(max_output_bytes=64 << 10) as rust:
        with pytest.raises(py_host.LimitExceeded) as raised:
            rust.start_procedure_json("fault:huge-output-then-error")
        assert raised.value.limit == "output"
        assert_recovers(rust)


def test_the_deadline_does_not_count_the_executors_time() -> None:
    def slow(host: str, action: str, timeout: int) -> bool:
        time.sleep(1.5)
        return True

    limits = py_host.Limits(deadline_seconds=1.0)
    with py_host.load(executor=slow, limits=limits) as rust:
        output = rust.start_procedure(tutorial_input(host_list=["a"]))
    assert output.result == "success"


PROCEDURE_ENTRIES = {
    "models": lambda rust, fields: rust.start_procedure(fields),
    "raw JSON": lambda rust, fields: rust.start_procedure_json(json.dumps(fields)),
    "reply buffer": lambda rust, fields: rust.start_procedure_buffer(json.dumps(fields)),
}


@pytest.mark.parametrize("entry", PROCEDURE_ENTRIES.values(), ids=PROCEDURE_ENTRIES.keys())
def test_procedure_seconds_bounds_a_whole_procedure_executor_included(
    entry: Callable[[py_host.RustModule, dict[str, Any]], object],
) -> None:
    rounds: list[int] = []

    def slow_and_down(host: str, action: str, timeout: int) -> bool:
        rounds.append(1)
        time.sleep(0.05)
        return False

    # Each round takes at least 0.05 s, and the budget is looked at before
    # each round and each step: past 0.12 s, no fourth round can start.
    limits = py_host.Limits(procedure_seconds=0.12)
    with py_host.load(executor=slow_and_down, limits=limits, max_instances=1) as rust:
        with pytest.raises(py_host.DeadlineExceeded) as raised:
            entry(rust, tutorial_input(host_list=["a"], retries=20))
        assert raised.value.limit == "procedure"
        assert isinstance(raised.value, TimeoutError)
        assert "executor" in str(raised.value)
        assert 1 <= len(rounds) <= 3
        assert rust.live_allocations() == 0
        rust.print_int(7)


def test_without_procedure_seconds_a_slow_procedure_runs_to_its_end() -> None:
    def slow_and_down(host: str, action: str, timeout: int) -> bool:
        time.sleep(0.05)
        return False

    with py_host.load(executor=slow_and_down) as rust:
        output = rust.start_procedure(tutorial_input(host_list=["a"], retries=4))
    assert output.failures[0].attempts == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"procedure_seconds": 0},
        {"procedure_seconds": "5"},
        {"max_memory_bytes": -1},
        {"deadline_seconds": 0},
        {"deadline_seconds": -1.0},
        {"max_fuel": 0},
        {"max_output_bytes": -5},
        {"max_reply_bytes": "1"},
        {"max_memory_bytes": True},
        {"deadline_seconds": float("nan")},
    ],
)
def test_limits_refuse_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(py_host.ConfigError, match=next(iter(bad))):
        py_host.Limits(**bad)


@pytest.mark.parametrize("entry", ["start_procedure_json", "start_procedure_buffer"])
def test_a_step_whose_output_cannot_be_written_fails_with_io_and_leaves_nothing(
    faulty: py_host.RustModule, entry: str
) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stdout is closed")

    with contextlib.redirect_stdout(Closed()), pytest.raises(py_host.ModuleError) as raised:
        getattr(faulty, entry)("fault:huge-output-then-error")
    assert raised.value.kind == "io"
    assert_recovers(faulty)


# The ABI's checks at their edges (docs/ABI.md, "What a host checks").


@pytest.mark.parametrize(
    ("size", "ptr", "length", "inside"),
    [
        (65536, 0, 65536, True),
        (65536, 0, 65537, False),
        (65536, 65535, 1, True),
        (65536, 65535, 2, False),
        (65536, 65536, 0, True),
        (65536, 65537, 0, False),
        (65536, 65520, 16, True),
        (65536, 65521, 16, False),
        (65536, 2**32 - 1, 2, False),
    ],
)
def test_check_bounds_counts_the_length(size: int, ptr: int, length: int, inside: bool) -> None:
    if inside:
        check_bounds(size, ptr, length)
    else:
        with pytest.raises(OutOfBounds):
            check_bounds(size, ptr, length)


def test_a_reply_straddling_the_end_of_memory_is_refused_and_never_read() -> None:
    # In a process of its own: read past the end of linear memory, a reply
    # that slipped through would crash the process, not fail an assertion.
    done = run_python(
        f"""
        import py_host
        with py_host.load({str(FAULTS_WASM)!r}) as rust:
            for call, fault in [
                ("print_string", "fault:reply-straddles-memory-end"),
                ("print_string", "fault:reply-at-memory-end"),
                ("start_procedure_json", "fault:reply-straddles-memory-end"),
                ("start_procedure_json", "fault:reply-at-memory-end"),
                ("start_procedure_buffer", "fault:reply-straddles-memory-end"),
            ]:
                try:
                    getattr(rust, call)(fault)
                except py_host.AbiViolation as error:
                    print(call, fault, "outside" in str(error))
            print("live", rust.live_allocations())
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "print_string fault:reply-straddles-memory-end True",
        # Inside memory to its last byte: refused only as no live buffer.
        "print_string fault:reply-at-memory-end False",
        "start_procedure_json fault:reply-straddles-memory-end True",
        "start_procedure_json fault:reply-at-memory-end False",
        "start_procedure_buffer fault:reply-straddles-memory-end True",
        "live 0",
    ]


def test_a_reply_of_exactly_max_reply_bytes_is_taken_and_one_byte_more_is_not() -> None:
    # docs/ABI.md traces this procedure: its output is a reply of 176 bytes,
    # written in place for start_procedure, in a buffer of its own for
    # start_procedure_buffer; its rounds' replies are shorter.
    network = py_host.SimulatedNetwork(down={"server1"})
    for limit, taken in [(176, True), (175, False)]:
        limits = py_host.Limits(max_reply_bytes=limit)
        with py_host.load(executor=network, limits=limits) as rust:
            for call in [
                lambda: rust.start_procedure(tutorial_input()).failed_hosts,
                lambda: json.loads(rust.start_procedure_json(json.dumps(tutorial_input())))[
                    "failed_hosts"
                ],
                lambda: json.loads(
                    rust.start_procedure_buffer(json.dumps(tutorial_input())).read()
                )["ok"]["failed_hosts"],
            ]:
                if taken:
                    assert call() == ["server1"]
                else:
                    with pytest.raises(py_host.LimitExceeded) as raised:
                        call()
                    assert raised.value.limit == "reply"
                    assert "176 bytes, more than 175" in str(raised.value)


def test_a_packed_reply_of_exactly_max_reply_bytes_is_read() -> None:
    size = 2 << 20  # fault:reply-2mib: that many spaces, which are no JSON
    with load_faulty(max_reply_bytes=size) as rust, pytest.raises(py_host.AbiViolation):
        rust.start_procedure_json("fault:reply-2mib")
    with load_faulty(max_reply_bytes=size - 1) as rust:
        with pytest.raises(py_host.LimitExceeded):
            rust.start_procedure_json("fault:reply-2mib")
        assert_recovers(rust)
